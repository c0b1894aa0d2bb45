// The protobuf schemas the shim speaks: containerd's task API, its task events and the events
// Forward service (vendored under proto/, from Debian's golang-github-containerd-containerd-dev),
// plus the ttrpc envelope. Loaded once, from proto/ beside src/ and dist/ alike.
import path from 'node:path';
import protobuf from 'protobufjs';

const PROTO_DIR = path.join(__dirname, '..', 'proto');
const FILES = [
  'smolvm/ttrpc.proto',
  'github.com/containerd/containerd/runtime/v2/task/shim.proto',
  'github.com/containerd/containerd/api/events/task.proto',
  'github.com/containerd/containerd/api/services/ttrpc/events/v1/events.proto',
];

let root: protobuf.Root | undefined;

export function protoRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  // google/protobuf/* are protobufjs's built-in common files; the rest is ours, relative to proto/.
  r.resolvePath = (_origin, target) =>
    target.startsWith('google/protobuf/') || path.isAbsolute(target) ? target : path.join(PROTO_DIR, target);
  r.loadSync(FILES.map((f) => path.join(PROTO_DIR, f)));
  r.resolveAll();
  root = r;
  return r;
}

export function messageType(name: string): protobuf.Type {
  return protoRoot().lookupType(name);
}

/** Encodes a plain object as message `name` (unknown fields are an error, not dropped). */
export function encodeMessage(name: string, value: Record<string, unknown>): Buffer {
  const type = messageType(name);
  const problem = type.verify(value);
  if (problem) throw new Error(`${name}: ${problem}`);
  return Buffer.from(type.encode(type.fromObject(value)).finish());
}

/** Decodes message `name` into a plain object: default values filled in, 64-bit numbers as numbers. */
export function decodeMessage<T = Record<string, unknown>>(name: string, bytes: Uint8Array): T {
  const type = messageType(name);
  return type.toObject(type.decode(bytes), {
    defaults: true,
    longs: Number,
    bytes: Buffer,
    arrays: true,
    objects: true,
  }) as T;
}

/** A google.protobuf.Timestamp for a time in milliseconds. */
export function timestamp(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/**
 * A google.protobuf.Any holding message `name` (containerd's type URLs are the full names).
 * protobufjs's built-in any.proto keeps the field's proto name, type_url.
 */
export function anyOf(name: string, value: Record<string, unknown>): { type_url: string; value: Buffer } {
  return { type_url: name, value: encodeMessage(name, value) };
}
