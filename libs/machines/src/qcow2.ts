// A qcow2 layer over a raw backing file, written in-process (QEMU's docs/interop/qcow2.txt): a
// fork's disk. An empty layer is four small structures, so spawning `qemu-img create` for it
// cost more than the rest of `machine create --from-snapshot`. Layout, as qemu-img makes it:
// cluster 0 the header (+ extensions + backing name), 1 the refcount table, 2 its one refcount
// block, 3.. the all-zero L1 table (nothing allocated: every read goes to the backing file).
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '@smolvm/common';

const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
/** Bytes of guest disk one L2 table maps: CLUSTER / 8 entries of one cluster each. */
const L2_SPAN = (CLUSTER / 8) * CLUSTER;
/** Version 3 header with the compression_type byte, padded to a multiple of 8. */
const HEADER_LENGTH = 112;
const EXT_BACKING_FORMAT = 0xe2792aca;
const REFCOUNT_TABLE_AT = CLUSTER;
const REFCOUNT_BLOCK_AT = 2 * CLUSTER;
const L1_AT = 3 * CLUSTER;
/** QEMU's limit on a backing file name (and on the L1 table: 32 MiB). */
export const QCOW2_MAX_BACKING_NAME = 1023;
const MAX_L1_ENTRIES = (32 << 20) / 8;
/** Largest virtual size: QEMU's L1 limit (2 PiB, still exact as a double). */
export const QCOW2_MAX_SIZE = MAX_L1_ENTRIES * L2_SPAN;

/**
 * The bytes of an empty qcow2 v3 layer of `size` bytes over the raw file `backing`: the
 * structures to write at their offsets, and the file's length (the L1 table is zeros: sparse).
 */
export function qcow2Layer(backing: string, size: number): { parts: Array<[number, Buffer]>; length: number } {
  const name = Buffer.from(backing, 'utf8');
  // An absolute path: QEMU reads a name with ':' before any '/' as a protocol (json:, nbd:, ...).
  if (!path.isAbsolute(backing) || backing.includes('\0') || name.length > QCOW2_MAX_BACKING_NAME) {
    throw new UsageError(`cannot make a disk layer over "${backing}"`, {
      remedy: `the backing file must be an absolute path of at most ${QCOW2_MAX_BACKING_NAME} bytes without NUL (move SMOLVM_HOME to a shorter path)`,
    });
  }
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0 || size > QCOW2_MAX_SIZE) {
    throw new UsageError(`cannot make a disk layer of ${size} bytes`, {
      remedy: `the size must be a positive multiple of 512 bytes up to ${QCOW2_MAX_SIZE}`,
    });
  }
  const l1Entries = Math.ceil(size / L2_SPAN);
  const l1Bytes = l1Entries * 8;
  const l1Clusters = Math.ceil(l1Bytes / CLUSTER);

  const format = Buffer.from('raw');
  const extBytes = 8 + align8(format.length) + 8; // backing format, then the end marker
  const nameAt = HEADER_LENGTH + extBytes;
  const header = Buffer.alloc(nameAt + name.length);
  header.write('QFI\xfb', 0, 'latin1');
  header.writeUInt32BE(3, 4); // version
  header.writeBigUInt64BE(BigInt(nameAt), 8); // backing_file_offset
  header.writeUInt32BE(name.length, 16);
  header.writeUInt32BE(CLUSTER_BITS, 20);
  header.writeBigUInt64BE(BigInt(size), 24);
  header.writeUInt32BE(0, 32); // no encryption
  header.writeUInt32BE(l1Entries, 36);
  header.writeBigUInt64BE(BigInt(L1_AT), 40);
  header.writeBigUInt64BE(BigInt(REFCOUNT_TABLE_AT), 48);
  header.writeUInt32BE(1, 56); // refcount table clusters
  // 60-71: no internal snapshots; 72-95: no feature bits (clean, no lazy refcounts)
  header.writeUInt32BE(4, 96); // refcount_order: 16-bit refcounts
  header.writeUInt32BE(HEADER_LENGTH, 100);
  // 104: compression_type zlib, then zero padding
  let at = HEADER_LENGTH;
  // The backing format is stated, so QEMU never probes the snapshot's disk for a format.
  header.writeUInt32BE(EXT_BACKING_FORMAT, at);
  header.writeUInt32BE(format.length, at + 4);
  format.copy(header, at + 8);
  at += 8 + align8(format.length);
  at += 8; // end of extensions: type 0, length 0
  name.copy(header, at);

  const table = Buffer.alloc(8);
  table.writeBigUInt64BE(BigInt(REFCOUNT_BLOCK_AT));
  // One refcount block holds CLUSTER / 2 counts: far more than 3 + the largest L1 (512 clusters).
  const used = 3 + l1Clusters;
  const block = Buffer.alloc(used * 2);
  for (let i = 0; i < used; i++) block.writeUInt16BE(1, i * 2);
  return {
    parts: [
      [0, header],
      [REFCOUNT_TABLE_AT, table],
      [REFCOUNT_BLOCK_AT, block],
    ],
    length: L1_AT + l1Bytes,
  };
}

/**
 * Writes the layer of qcow2Layer to the new file `dest` (owner-only; refused if it exists) and
 * syncs it. On failure nothing is left.
 */
export function writeQcow2Layer(dest: string, backing: string, size: number): void {
  const { parts, length } = qcow2Layer(backing, size);
  const fd = fs.openSync(dest, 'wx', 0o600);
  try {
    for (const [offset, bytes] of parts) fs.writeSync(fd, bytes, 0, bytes.length, offset);
    fs.ftruncateSync(fd, length);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(dest, { force: true });
    throw err;
  }
  fs.closeSync(fd);
}

function align8(n: number): number {
  return (n + 7) & ~7;
}
