// File transfer ops (`machine cp`): putFile streams bytes into a staging file next to the
// destination and renames it into place once complete and synced; getFile streams a regular
// file out. Both carry explicit sizes so either end can refuse an oversized transfer up front.
import { Fields, SchemaError, type Json } from './schema';

/** The reference's per-transfer cap: files at or above 4 GiB are refused in either direction. */
export const MAX_TRANSFER_BYTES = 4 * 1024 ** 3;

export interface PutFileOptions {
  /** Absolute guest path. When it names an existing directory, the file goes in it as `name`. */
  path: string;
  /** Exact byte count that will follow; a stream that ends short or runs long is discarded. */
  size: number;
  /** Permission bits (0–0o777); setuid/setgid/sticky bits are never set by a copy. */
  mode: number;
  /** File name to use when `path` is a directory (the source's base name). */
  name?: string;
}

export interface PutFileResult {
  /** Where the file landed (differs from `path` when that was a directory). */
  path: string;
  bytes: number;
}

export interface GetFileOptions {
  path: string;
  /** Files this large or larger are refused before any byte is sent. */
  maxBytes: number;
}

export interface FileInfo {
  size: number;
  mode: number;
}

export interface PutFileRequest extends PutFileOptions {
  stream: number;
}

export interface GetFileRequest extends GetFileOptions {
  stream: number;
}

function guestPath(f: Fields, key: string): string {
  const p = f.str(key, 4096);
  if (!p.startsWith('/') || p.includes('\0')) throw new SchemaError(`${key}: '${p}' must be an absolute path`);
  return p;
}

function fileName(f: Fields): string | undefined {
  const name = f.optStr('name', 255);
  if (name === undefined) return undefined;
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw new SchemaError(`name: '${name}' is not a file name`);
  return name;
}

export function encodePutFile(opts: PutFileOptions, stream: number): Json {
  return { path: opts.path, size: opts.size, mode: opts.mode & 0o777, ...(opts.name !== undefined ? { name: opts.name } : {}), stream };
}

export function parsePutFile(args: Json): PutFileRequest {
  const f = new Fields(args, 'putFile');
  const name = fileName(f);
  return {
    path: guestPath(f, 'path'),
    size: f.int('size', 0, MAX_TRANSFER_BYTES - 1),
    mode: f.int('mode', 0, 0o777),
    ...(name !== undefined ? { name } : {}),
    stream: f.int('stream', 1),
  };
}

export function parsePutFileResult(result: Json): PutFileResult {
  const f = new Fields(result, 'putFile result');
  return { path: guestPath(f, 'path'), bytes: f.int('bytes', 0, MAX_TRANSFER_BYTES - 1) };
}

export function encodeGetFile(opts: GetFileOptions, stream: number): Json {
  return { path: opts.path, maxBytes: opts.maxBytes, stream };
}

export function parseGetFile(args: Json): GetFileRequest {
  const f = new Fields(args, 'getFile');
  return { path: guestPath(f, 'path'), maxBytes: f.int('maxBytes', 0, MAX_TRANSFER_BYTES), stream: f.int('stream', 1) };
}

export function parseFileInfo(result: Json): FileInfo {
  const f = new Fields(result, 'getFile result');
  return { size: f.int('size', 0, MAX_TRANSFER_BYTES - 1), mode: f.int('mode', 0, 0o7777) };
}
