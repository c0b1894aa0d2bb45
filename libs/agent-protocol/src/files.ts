// File transfer ops (`machine cp`): putFile streams bytes into a staging file next to the
// destination and renames it into place once complete and synced; getFile streams a regular
// file out. Both carry explicit sizes so either end can refuse an oversized transfer up front.
// Directories travel as tar streams (putTree/installTree in, getTree out), extracted into a
// staging directory and renamed into place, so a partial tree never appears either.
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

/**
 * putFile from a file already in the guest (a read-only host share the supervisor staged the
 * upload in: 9p reads beat the agent channel several times under TCG). Same atomic write.
 */
export interface InstallFileOptions extends PutFileOptions {
  /** Absolute guest path of the source; must be a regular file of exactly `size` bytes. */
  source: string;
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
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0'))
    throw new SchemaError(`name: '${name}' is not a file name`);
  return name;
}

export function encodePutFile(opts: PutFileOptions, stream: number): Json {
  return {
    path: opts.path,
    size: opts.size,
    mode: opts.mode & 0o777,
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    stream,
  };
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

export function encodeInstallFile(opts: InstallFileOptions): Json {
  return {
    path: opts.path,
    source: opts.source,
    size: opts.size,
    mode: opts.mode & 0o777,
    ...(opts.name !== undefined ? { name: opts.name } : {}),
  };
}

export function parseInstallFile(args: Json): InstallFileOptions {
  const f = new Fields(args, 'installFile');
  const name = fileName(f);
  const source = guestPath(f, 'source');
  if (source.split('/').includes('..')) throw new SchemaError(`source: '${source}' must not contain '..'`);
  return {
    path: guestPath(f, 'path'),
    source,
    size: f.int('size', 0, MAX_TRANSFER_BYTES - 1),
    mode: f.int('mode', 0, 0o777),
    ...(name !== undefined ? { name } : {}),
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

/** A directory into the guest: a tar stream of one top-level entry `name`. */
export interface PutTreeOptions {
  /** Absolute guest path: an existing directory receives `name` in it; otherwise it is the new directory. */
  path: string;
  /** The tar's single top-level directory. */
  name: string;
  /** The stream is cut off (and nothing appears) past this many bytes. */
  maxBytes: number;
}

export interface PutTreeRequest extends PutTreeOptions {
  stream: number;
}

/** putTree from a tar file already in the guest (the supervisor's inbox). */
export interface InstallTreeOptions {
  path: string;
  name: string;
  source: string;
}

export interface GetTreeOptions {
  /** Absolute guest path of a directory. */
  path: string;
  /** The stream is cut off past this many bytes (the host then discards what it got). */
  maxBytes: number;
}

export interface GetTreeRequest extends GetTreeOptions {
  stream: number;
}

export interface TreeResult {
  /** Where the directory landed. */
  path: string;
  bytes: number;
}

export function encodePutTree(opts: PutTreeOptions, stream: number): Json {
  return { path: opts.path, name: opts.name, maxBytes: opts.maxBytes, stream };
}

function treeName(f: Fields): string {
  const name = fileName(f);
  if (name === undefined) throw new SchemaError('name: required');
  return name;
}

export function parsePutTree(args: Json): PutTreeRequest {
  const f = new Fields(args, 'putTree');
  return {
    path: guestPath(f, 'path'),
    name: treeName(f),
    maxBytes: f.int('maxBytes', 0, MAX_TRANSFER_BYTES),
    stream: f.int('stream', 1),
  };
}

export function encodeInstallTree(opts: InstallTreeOptions): Json {
  return { path: opts.path, name: opts.name, source: opts.source };
}

export function parseInstallTree(args: Json): InstallTreeOptions {
  const f = new Fields(args, 'installTree');
  const source = guestPath(f, 'source');
  if (source.split('/').includes('..')) throw new SchemaError(`source: '${source}' must not contain '..'`);
  return { path: guestPath(f, 'path'), name: treeName(f), source };
}

export function encodeGetTree(opts: GetTreeOptions, stream: number): Json {
  return { path: opts.path, maxBytes: opts.maxBytes, stream };
}

export function parseGetTree(args: Json): GetTreeRequest {
  const f = new Fields(args, 'getTree');
  return { path: guestPath(f, 'path'), maxBytes: f.int('maxBytes', 0, MAX_TRANSFER_BYTES), stream: f.int('stream', 1) };
}

export function parseTreeResult(result: Json): TreeResult {
  const f = new Fields(result, 'tree result');
  return { path: guestPath(f, 'path'), bytes: f.int('bytes', 0, MAX_TRANSFER_BYTES) };
}
