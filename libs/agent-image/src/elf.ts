// Just enough ELF64 to ship a dynamically linked program into a VM: its interpreter
// (PT_INTERP), the libraries it needs (DT_NEEDED) and where it says to look (DT_RUNPATH/RPATH).
// Reads headers with positioned reads, never the whole (100 MB) file.
import fs from 'node:fs';

export interface ElfInfo {
  /** e_machine, to skip libraries of another architecture that share a name. */
  machine: number;
  interpreter: string | null;
  needed: string[];
  runpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const n = fs.readSync(fd, buf, 0, length, offset);
  if (n !== length) throw new Error(`truncated ELF file (wanted ${length} bytes at ${offset})`);
  return buf;
}

function cString(buf: Buffer, offset: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 ? buf.length : end);
}

/** Null for files that are not 64-bit little-endian ELF. */
export function readElf(file: string): ElfInfo | null {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    if (fs.readSync(fd, head, 0, 64, 0) < 64) return null;
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return null;
    const machine = head.readUInt16LE(0x12);
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    if (phentsize < 56 || phnum > 4096) throw new Error(`${file}: unexpected program header table`);
    const ph = readAt(fd, phoff, phentsize * phnum);
    const loads: Array<{ vaddr: number; offset: number; filesz: number }> = [];
    let interpreter: string | null = null;
    let dynamic: { offset: number; size: number } | null = null;
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      const type = ph.readUInt32LE(at);
      const offset = Number(ph.readBigUInt64LE(at + 8));
      const vaddr = Number(ph.readBigUInt64LE(at + 16));
      const filesz = Number(ph.readBigUInt64LE(at + 32));
      if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
      else if (type === PT_INTERP) interpreter = cString(readAt(fd, offset, filesz), 0);
      else if (type === PT_DYNAMIC) dynamic = { offset, size: filesz };
    }
    const info: ElfInfo = { machine, interpreter, needed: [], runpath: [] };
    if (!dynamic) return info;
    const dyn = readAt(fd, dynamic.offset, dynamic.size);
    let strtabAddr: number | null = null;
    const needed: bigint[] = [];
    const paths: bigint[] = [];
    for (let at = 0; at + 16 <= dyn.length; at += 16) {
      const tag = dyn.readBigInt64LE(at);
      const val = dyn.readBigUInt64LE(at + 8);
      if (tag === 0n) break;
      if (tag === DT_NEEDED) needed.push(val);
      else if (tag === DT_STRTAB) strtabAddr = Number(val);
      else if (tag === DT_RPATH || tag === DT_RUNPATH) paths.push(val);
    }
    if (strtabAddr === null) return info;
    const seg = loads.find((l) => strtabAddr !== null && strtabAddr >= l.vaddr && strtabAddr < l.vaddr + l.filesz);
    if (!seg) throw new Error(`${file}: string table outside the loaded segments`);
    const strOffset = strtabAddr - seg.vaddr + seg.offset;
    const str = (v: bigint) => {
      // Names are short; read a bounded window instead of the whole table.
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(fd, buf, 0, buf.length, strOffset + Number(v));
      return cString(buf.subarray(0, n), 0);
    };
    info.needed = needed.map(str);
    info.runpath = paths.flatMap((p) => str(p).split(':')).filter(Boolean);
    return info;
  } finally {
    fs.closeSync(fd);
  }
}

const SHT_SYMTAB = 2;

/**
 * Whether a 64-bit little-endian ELF file has a static symbol table (.symtab: names for debuggers
 * and crash dumps, not needed to run; `strip` removes it). False for other files.
 */
export function hasSymbolTable(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    if (fs.readSync(fd, head, 0, 64, 0) < 64) return false;
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return false;
    const shoff = Number(head.readBigUInt64LE(0x28));
    const shentsize = head.readUInt16LE(0x3a);
    const shnum = head.readUInt16LE(0x3c);
    if (shoff === 0 || shnum === 0) return false;
    if (shentsize < 64 || shnum > 65_280) throw new Error(`${file}: unexpected section header table`);
    const sh = readAt(fd, shoff, shentsize * shnum);
    for (let i = 0; i < shnum; i++) if (sh.readUInt32LE(i * shentsize + 4) === SHT_SYMTAB) return true;
    return false;
  } finally {
    fs.closeSync(fd);
  }
}
