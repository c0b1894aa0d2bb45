import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { NotFoundError, formatError } from '@smolvm/common';
import {
  FOOTER_SIZE,
  PackFile,
  PackFormatError,
  RUNTIME_MEDIA_TYPE,
  SECTION_ALIGN,
  assemblePack,
  extractSection,
  importSections,
  importedBoot,
  packedBoot,
  parseManifest,
  runtimeDisk,
  runtimeOf,
  sectionDisk,
  type PackManifestBase,
  type SectionName,
} from '../src';
import { testManifest } from './helpers/manifest';

const base = testManifest({
  platform: 'linux/amd64',
  host_platform: 'linux/amd64',
  image: { reference: 'localhost:5000/test:1', digest: `sha256:${'a'.repeat(64)}` },
  env: ['PATH=/usr/bin:/bin'],
  cpus: 4,
  memory_mib: 8192,
  artifact: { cpus: 2 },
});

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pack-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const content: Record<string, Buffer> = {
  kernel: crypto.randomBytes(5000),
  agent: crypto.randomBytes(8192),
  rootfs: crypto.randomBytes(10_000),
};

async function makePack(file: string, prefix?: string): Promise<void> {
  await assemblePack({
    output: file,
    manifest: base,
    sections: (['kernel', 'agent', 'rootfs'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
    })),
    ...(prefix ? { prefix } : {}),
  });
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('a written pack opens, lists aligned sections and reads them back', async () => {
  const file = path.join(dir, 'a.smolmachine');
  await makePack(file);
  const pack = PackFile.open(file);
  expect(pack.manifest.artifact).toEqual({ cpus: 2 });
  expect(pack.sections().map((s) => s.name)).toEqual(['kernel', 'agent', 'rootfs']);
  for (const s of pack.sections()) {
    expect(s.offset % SECTION_ALIGN).toBe(0);
    expect(await readAll(pack.readSection(s.name))).toEqual(content[s.name]);
  }
  expect(await pack.verify()).toEqual({ remembered: false });
  expect(pack.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
});

test('appended to a stub, the payload starts aligned in the file and reads the same', async () => {
  const stub = path.join(dir, 'stub');
  fs.writeFileSync(stub, crypto.randomBytes(1234));
  const file = path.join(dir, 'app');
  await makePack(file, stub);
  const pack = PackFile.open(file);
  expect(pack.payloadStart).toBe(SECTION_ALIGN);
  expect(fs.statSync(file).mode & 0o777).toBe(0o755);
  expect(fs.readFileSync(file).subarray(0, 1234)).toEqual(fs.readFileSync(stub));
  for (const s of pack.sections()) expect(s.fileOffset % SECTION_ALIGN).toBe(0);
  await pack.verify();
  expect(await readAll(pack.readSection('rootfs'))).toEqual(content.rootfs);
});

test.each(['kernel', 'agent', 'rootfs'] as SectionName[])(
  'a flipped byte in the %s section is refused by verify',
  async (name) => {
    const file = path.join(dir, 'a.smolmachine');
    await makePack(file);
    const s = PackFile.open(file).section(name)!;
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, s.fileOffset + 17);
    b[0] ^= 0x01;
    fs.writeSync(fd, b, 0, 1, s.fileOffset + 17);
    fs.closeSync(fd);
    await expect(PackFile.open(file).verify()).rejects.toThrow(
      new RegExp(`its ${name} section does not match its sha256`),
    );
  },
);

test('a flipped byte in the manifest, a truncated file, a wrong magic or version are refused on open', async () => {
  const file = path.join(dir, 'a.smolmachine');
  await makePack(file);
  const good = fs.readFileSync(file);
  const manifestAt = good.length - FOOTER_SIZE - 50;
  const cases: Array<[string, Buffer, RegExp]> = [
    [
      'manifest',
      Buffer.concat([good.subarray(0, manifestAt), Buffer.from([good[manifestAt] ^ 1]), good.subarray(manifestAt + 1)]),
      /manifest does not match the digest/,
    ],
    ['truncated', good.subarray(0, good.length - 100), /SMOLMACH magic/],
    ['cut at the front', good.subarray(SECTION_ALIGN), /payload is \d+ bytes/],
    ['magic', Buffer.concat([good.subarray(0, good.length - 8), Buffer.from('NOTAPACK')]), /SMOLMACH magic/],
    [
      'version',
      (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(5, good.length - FOOTER_SIZE);
        return b;
      })(),
      /format version 5, and this smolvm reads versions 1, 2, 3 and 4/,
    ],
    [
      'spliced version',
      (() => {
        const b = Buffer.from(good);
        b.writeUInt32LE(2, good.length - FOOTER_SIZE);
        return b;
      })(),
      /manifest says format version 1 and its footer 2/,
    ],
    ['empty', Buffer.alloc(0), /shorter than the footer/],
  ];
  for (const [label, bytes, message] of cases) {
    const bad = path.join(dir, `bad-${label.replace(/ /g, '-')}`);
    fs.writeFileSync(bad, bytes);
    expect(() => PackFile.open(bad)).toThrow(PackFormatError);
    expect(() => PackFile.open(bad)).toThrow(message);
  }
});

test('a manifest with unknown fields or overlapping sections is refused', async () => {
  const { parseManifest } = await import('../src');
  const ok = JSON.parse(
    JSON.stringify({
      format: 'smolmachine',
      version: 1,
      ...base,
      sections: [
        {
          name: 'kernel',
          media_type: 'application/vnd.smolvm.kernel.vmlinux.v1',
          offset: 0,
          size: 5000,
          sha256: 'b'.repeat(64),
        },
        {
          name: 'agent',
          media_type: 'application/vnd.smolvm.agent.erofs.v1',
          offset: 8192,
          size: 10,
          sha256: 'c'.repeat(64),
        },
        {
          name: 'rootfs',
          media_type: 'application/vnd.smolvm.rootfs.erofs.v1',
          offset: 12288,
          size: 10,
          sha256: 'd'.repeat(64),
        },
      ],
    }),
  ) as Record<string, unknown>;
  const parse = (m: unknown) => parseManifest(Buffer.from(JSON.stringify(m)), 'f', 1 << 20);
  expect(parse(ok).sections).toHaveLength(3);
  expect(() => parse({ ...ok, extra: 1 })).toThrow(/unknown field extra/);
  const sections = ok.sections as Array<Record<string, unknown>>;
  expect(() => parse({ ...ok, sections: [sections[0], { ...sections[1], offset: 4096 }, sections[2]] })).toThrow(
    /over another section/,
  );
  expect(() => parse({ ...ok, sections: [sections[0], { ...sections[1], offset: 8000 }, sections[2]] })).toThrow(
    /not a multiple of 4096/,
  );
  expect(() => parse({ ...ok, sections: [sections[0], sections[2]] })).toThrow(/no agent section/);
  expect(() => parse({ ...ok, cpus: 1000 })).toThrow(/cpus/);
  expect(() => parseManifest(Buffer.from(JSON.stringify(ok)), 'f', 12290)).toThrow(
    /over another section or the manifest/,
  );
});

test('a verification is remembered per file identity, and a changed file is verified again', async () => {
  const file = path.join(dir, 'a.smolmachine');
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache, { mode: 0o700 });
  await makePack(file);
  expect(await PackFile.open(file).verify(cache)).toEqual({ remembered: false });
  expect(await PackFile.open(file).verify(cache)).toEqual({ remembered: true });
  // Same bytes rewritten with the old mtime: ctime differs, so it is a new identity.
  const { mtime } = fs.statSync(file);
  const s = PackFile.open(file).section('agent')!;
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, Buffer.from([content.agent[0] ^ 1]), 0, 1, s.fileOffset);
  fs.closeSync(fd);
  fs.utimesSync(file, mtime, mtime);
  await expect(PackFile.open(file).verify(cache)).rejects.toThrow(/agent section/);
});

test('sections extract to a digest-keyed cache, also when processes race', async () => {
  const file = path.join(dir, 'a.smolmachine');
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache, { mode: 0o700 });
  await makePack(file);
  const pack = PackFile.open(file);
  const paths = await Promise.all(Array.from({ length: 4 }, () => extractSection(pack, 'kernel', cache)));
  expect(new Set(paths).size).toBe(1);
  expect(path.basename(paths[0])).toBe(pack.section('kernel')!.sha256);
  expect(fs.readFileSync(paths[0])).toEqual(content.kernel);
  expect(fs.statSync(paths[0]).mode & 0o777).toBe(0o600);
  expect(fs.readdirSync(path.dirname(paths[0]))).toEqual([pack.section('kernel')!.sha256]);
});

test('importSections copies and verifies in one read; a damaged section is refused, cached or not', async () => {
  const file = path.join(dir, 'a.smolmachine');
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache, { mode: 0o700 });
  await makePack(file);
  const reads: string[] = [];
  const readSection = PackFile.prototype.readSection;
  const spy = jest.spyOn(PackFile.prototype, 'readSection').mockImplementation(function (
    this: PackFile,
    name: SectionName,
  ) {
    reads.push(name);
    return readSection.call(this, name);
  });
  try {
    await importSections(PackFile.open(file), cache);
  } finally {
    spy.mockRestore();
  }
  // Each section read once: hashed while copied, not again by the verification.
  expect(reads).toEqual(['kernel', 'agent', 'rootfs']);
  expect(await PackFile.open(file).verify(cache)).toEqual({ remembered: true });
  for (const name of ['kernel', 'rootfs'] as SectionName[]) {
    // A damaged copy of the same pack: its kernel is in the cache already (not copied again), its rootfs is not.
    const other = path.join(dir, `${name}.smolmachine`);
    fs.copyFileSync(file, other);
    const s = PackFile.open(other).section(name)!;
    const fd = fs.openSync(other, 'r+');
    fs.writeSync(fd, Buffer.from([content[name][7] ^ 1]), 0, 1, s.fileOffset + 7);
    fs.closeSync(fd);
    if (name === 'rootfs') fs.rmSync(path.join(cache, 'pack', 'sections', s.sha256));
    await expect(importSections(PackFile.open(other), cache)).rejects.toThrow(
      `its ${name} section does not match its sha256 (damaged or tampered with)`,
    );
    expect(fs.existsSync(path.join(cache, 'pack', 'sections', s.sha256))).toBe(name === 'kernel');
  }
});

test('a disk section is used in place from a file only this user can change, else copied', async () => {
  const file = path.join(dir, 'a.smolmachine');
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache, { mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  await makePack(file);
  const pack = PackFile.open(file);
  expect(await sectionDisk(pack, 'rootfs', cache)).toEqual({
    path: file,
    offset: pack.section('rootfs')!.fileOffset,
    size: content.rootfs.length,
  });
  fs.chmodSync(file, 0o666);
  const copied = await sectionDisk(pack, 'rootfs', cache);
  expect(copied.offset).toBeUndefined();
  expect(fs.readFileSync(copied.path)).toEqual(content.rootfs);
});

test('a pack rebuilt from its manifest and section streams (as a registry pull does) is the same pack', async () => {
  const file = path.join(dir, 'a.smolmachine');
  await makePack(file);
  const pack = PackFile.open(file);
  const { format: _f, version: _v, sections, ...base } = pack.manifest;
  const rebuilt = path.join(dir, 'b.smolmachine');
  await assemblePack({
    output: rebuilt,
    manifest: base,
    sections: sections.map((s) => ({ name: s.name, open: () => pack.readSection(s.name) })),
  });
  expect(PackFile.open(rebuilt).digest).toBe(pack.digest);
  expect(fs.readFileSync(rebuilt)).toEqual(fs.readFileSync(file));
});

describe('format version 2: a running machine (memory and state sections)', () => {
  // Tens of MiB of RAM hashed twice per test, on a shared machine.
  jest.setTimeout(120_000);
  const MIB = 1024 * 1024;
  const GIB = 1024 * MIB;
  const snapshot = {
    id: 'web:ready',
    driver: 'kvm',
    qemu: { major: 7, minor: 2, micro: 22 },
    qemu_package: 'Debian 1:7.2+dfsg-7',
    nic: true,
  };
  const shaped = { ...base, memory_mib: 64 };
  const state = crypto.randomBytes(30_000);
  // RAM with a recognisable page far in; disks sparse but for their first block.
  const memoryPage = crypto.randomBytes(4096);
  function* chunks(total: number, first: Buffer, at = 0): Generator<Buffer> {
    for (let pos = 0; pos < total; pos += MIB) {
      const chunk = Buffer.alloc(Math.min(MIB, total - pos));
      if (at >= pos && at < pos + chunk.length) first.copy(chunk, at - pos);
      yield chunk;
    }
  }
  const sources = (sizes: Partial<Record<SectionName, number>> = {}) => [
    { name: 'kernel' as const, open: () => Readable.from([content.kernel]) },
    { name: 'agent' as const, open: () => Readable.from([content.agent]) },
    { name: 'rootfs' as const, open: () => Readable.from([content.rootfs]) },
    { name: 'overlay' as const, open: () => Readable.from(chunks(sizes.overlay ?? 4 * MIB, Buffer.from('overlay'))) },
    { name: 'storage' as const, open: () => Readable.from(chunks(sizes.storage ?? 4 * MIB, Buffer.from('storage'))) },
    { name: 'memory' as const, open: () => Readable.from(chunks(sizes.memory ?? 64 * MIB, memoryPage, 40 * MIB)) },
    { name: 'state' as const, open: () => Readable.from([state]) },
  ];

  test('a pack with a snapshot is version 2, reads its sections back and verifies; one without stays version 1', async () => {
    const file = path.join(dir, 'snap.smolmachine');
    const written = await assemblePack({ output: file, manifest: { ...shaped, snapshot }, sections: sources() });
    expect(written.manifest.version).toBe(2);
    const pack = PackFile.open(file);
    expect(pack.manifest.snapshot).toEqual(snapshot);
    expect(pack.manifest.version).toBe(2);
    expect(fs.readFileSync(file).readUInt32LE(fs.statSync(file).size - FOOTER_SIZE)).toBe(2);
    expect(pack.section('memory')!.size).toBe(64 * MIB);
    expect(await readAll(pack.readSection('state'))).toEqual(state);
    const memory = await readAll(pack.readSection('memory'));
    expect(memory.subarray(40 * MIB, 40 * MIB + 4096)).toEqual(memoryPage);
    await pack.verify();
    // Booting it would run a guest on disks another guest has mounted: refused, not booted.
    await expect(packedBoot(pack, dir)).rejects.toThrow(
      /holds the running state of snapshot web:ready, which is resumed, not booted/,
    );
    await expect(importSections(pack, dir)).rejects.toThrow(PackFormatError);
    // Sparse on disk: the zero runs of RAM and disks are holes.
    expect(fs.statSync(file).blocks * 512).toBeLessThan(8 * MIB);

    const old = path.join(dir, 'old.smolmachine');
    await makePack(old);
    const v1 = fs.readFileSync(old);
    expect(v1.readUInt32LE(v1.length - FOOTER_SIZE)).toBe(1);
    expect(v1.toString('latin1')).not.toContain('"snapshot"');
    // Parsed and serialized again (a registry's config, a machine's pack.json), still version 1 without the field.
    const reparsed = JSON.stringify(PackFile.open(old).manifest);
    expect(reparsed).not.toContain('"snapshot"');
    const { parseManifest } = await import('../src');
    expect(parseManifest(Buffer.from(reparsed), 'f', Number.MAX_SAFE_INTEGER).version).toBe(1);
  });

  test('a flipped byte in the memory or state section is refused by verify', async () => {
    const file = path.join(dir, 'snap.smolmachine');
    await assemblePack({ output: file, manifest: { ...shaped, snapshot }, sections: sources() });
    for (const [name, at] of [
      ['memory', 40 * MIB + 5],
      ['state', 100],
    ] as const) {
      const s = PackFile.open(file).section(name)!;
      const fd = fs.openSync(file, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, s.fileOffset + at);
      fs.writeSync(fd, Buffer.from([b[0] ^ 0x80]), 0, 1, s.fileOffset + at);
      fs.closeSync(fd);
      await expect(PackFile.open(file).verify()).rejects.toThrow(
        new RegExp(`its ${name} section does not match its sha256`),
      );
      const fix = fs.openSync(file, 'r+');
      fs.writeSync(fix, b, 0, 1, s.fileOffset + at);
      fs.closeSync(fix);
    }
    await PackFile.open(file).verify();
  });

  test('the manifest refuses a snapshot that does not fit its shape, and version 1 refuses what version 2 added', async () => {
    const { parseManifest } = await import('../src');
    const section = (name: SectionName, media_type: string, offset: number, size: number) => ({
      name,
      media_type,
      offset,
      size,
      sha256: 'e'.repeat(64),
    });
    const table = (memory = 64 * MIB, disk = MIB) => [
      section('kernel', 'application/vnd.smolvm.kernel.vmlinux.v1', 0, 4096),
      section('agent', 'application/vnd.smolvm.agent.erofs.v1', 4096, 4096),
      section('rootfs', 'application/vnd.smolvm.rootfs.erofs.v1', 8192, 4096),
      section('overlay', 'application/vnd.smolvm.disk.ext4.v1', 12288, disk),
      section('storage', 'application/vnd.smolvm.disk.ext4.v1', 12288 + disk, disk),
      section('memory', 'application/vnd.smolvm.memory.raw.v1', 12288 + 2 * disk, memory),
      section('state', 'application/vnd.smolvm.vmstate.qemu.v1', 12288 + 2 * disk + 256 * MIB, 4096),
    ];
    const v2 = { format: 'smolmachine', version: 2, ...shaped, snapshot, sections: table() };
    const parse = (m: unknown) => parseManifest(Buffer.from(JSON.stringify(m)), 'f', 4 * GIB);
    expect(parse(v2).snapshot).toEqual(snapshot);
    expect(() => parse({ ...v2, sections: table(128 * MIB) })).toThrow(
      /memory section of 134217728 bytes, not memory_mib \(64 MiB\)/,
    );
    expect(() => parse({ ...v2, memory_mib: 128 })).toThrow(/memory section/);
    expect(() => parse({ ...v2, sections: table().filter((s) => s.name !== 'state') })).toThrow(
      /snapshot but no state section/,
    );
    expect(() => parse({ ...v2, snapshot: null })).toThrow(/field snapshot is not an object/);
    expect(() => parse({ ...v2, snapshot: { ...snapshot, id: 'no-colon' } })).toThrow(/snapshot.id is not MACHINE:TAG/);
    expect(() => parse({ ...v2, snapshot: { ...snapshot, extra: 1 } })).toThrow(/unknown field snapshot.extra/);
    expect(() => parse({ ...v2, snapshot: undefined })).toThrow(/snapshot is not an object/);
    // What an older smolvm does with a newer pack, and this one with a version 1 pack that claims version 2 parts.
    expect(() => parse({ ...v2, version: 1 })).toThrow(/unknown field snapshot/);
    const { snapshot: _s, ...v1 } = { ...v2, version: 1 };
    expect(() => parse(v1)).toThrow(/names section memory, which format version 1 does not have/);
    expect(() => parse({ ...v2, version: 5 })).toThrow(/version is not an integer from 1 to 4/);
    expect(() => parse({ ...v2, sections: [...table(), section('gpu' as SectionName, 'x', 3 * GIB, 4096)] })).toThrow(
      /unknown section "gpu" \(made by a newer smolvm\?\)/,
    );
  });

  test('a version 2 pack rebuilt from its manifest and sections (a registry pull) is byte-identical', async () => {
    const file = path.join(dir, 'snap.smolmachine');
    await assemblePack({ output: file, manifest: { ...shaped, snapshot }, sections: sources() });
    const pack = PackFile.open(file);
    const { format: _f, version: _v, sections, ...rest } = pack.manifest;
    const rebuilt = path.join(dir, 'b.smolmachine');
    await assemblePack({
      output: rebuilt,
      manifest: rest,
      sections: sections.map((s) => ({ name: s.name, open: () => pack.readSection(s.name) })),
    });
    expect(PackFile.open(rebuilt).digest).toBe(pack.digest);
  });
});

describe('format version 3: a compressed kernel section', () => {
  // Compressible, like a vmlinux, with some noise so it is not trivial.
  const kernel = Buffer.concat([Buffer.from('vmlinux text '.repeat(40_000)), crypto.randomBytes(3000)]);
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
  const rest = (['agent', 'rootfs'] as SectionName[]).map((name) => ({
    name,
    open: () => Readable.from([content[name]]),
  }));

  async function compressedPack(file: string, kernelSource?: Parameters<typeof assemblePack>[0]['sections'][number]) {
    return assemblePack({
      output: file,
      manifest: base,
      sections: [kernelSource ?? { name: 'kernel', open: () => Readable.from([kernel]), compress: 'gzip' }, ...rest],
    });
  }

  /** A pack whose kernel section holds `stored` as gzip bytes described as inflating to `kernel`. */
  function forged(file: string, stored: Buffer, described = { size: kernel.length, sha256: sha(kernel) }) {
    return compressedPack(file, {
      name: 'kernel',
      open: () => Readable.from([stored]),
      compressed: { compression: 'gzip', uncompressed_size: described.size, uncompressed_sha256: described.sha256 },
    });
  }

  const cacheFiles = (cache: string) => {
    const sections = path.join(cache, 'pack', 'sections');
    return fs.existsSync(sections) ? fs.readdirSync(sections) : [];
  };

  test('is version 3, stored as gzip and inflated into the cache under its uncompressed sha256', async () => {
    const file = path.join(dir, 'a.smolmachine');
    const written = await compressedPack(file);
    expect(written.manifest.version).toBe(3);
    const pack = PackFile.open(file);
    const s = pack.section('kernel')!;
    expect(s).toMatchObject({
      media_type: 'application/vnd.smolvm.kernel.vmlinux.v1+gzip',
      compression: 'gzip',
      uncompressed_size: kernel.length,
      uncompressed_sha256: sha(kernel),
    });
    expect(s.size).toBeLessThan(kernel.length / 10);
    const stored = await readAll(pack.readSection('kernel'));
    expect(zlib.gunzipSync(stored)).toEqual(kernel);
    expect(sha(stored)).toBe(s.sha256);
    await pack.verify();
    const cache = path.join(dir, 'cache');
    const boot = await packedBoot(pack, cache);
    expect(boot.packed.kernel).toBe(path.join(cache, 'pack', 'sections', sha(kernel)));
    expect(fs.readFileSync(boot.packed.kernel)).toEqual(kernel);
    expect(fs.statSync(boot.packed.kernel).mode & 0o777).toBe(0o600);
    // Never used in place, whoever owns the pack: QEMU needs the raw bytes.
    expect(await sectionDisk(pack, 'kernel', cache)).toEqual({ path: boot.packed.kernel });
    // The same kernel stored raw (an older pack) is the same cache file.
    const raw = path.join(dir, 'raw.smolmachine');
    await compressedPack(raw, { name: 'kernel', open: () => Readable.from([kernel]) });
    expect(PackFile.open(raw).manifest.version).toBe(1);
    expect(await extractSection(PackFile.open(raw), 'kernel', cache)).toBe(boot.packed.kernel);
  });

  test('compresses the same kernel to the same bytes (one registry blob for every pack of a build)', async () => {
    await compressedPack(path.join(dir, 'a.smolmachine'));
    await compressedPack(path.join(dir, 'b.smolmachine'));
    expect(PackFile.open(path.join(dir, 'a.smolmachine')).section('kernel')!.sha256).toBe(
      PackFile.open(path.join(dir, 'b.smolmachine')).section('kernel')!.sha256,
    );
  });

  test('machines made from it boot the inflated kernel from the cache', async () => {
    const file = path.join(dir, 'a.smolmachine');
    await compressedPack(file);
    const pack = PackFile.open(file);
    const cache = path.join(dir, 'cache');
    await importSections(pack, cache);
    const { importedBoot } = await import('../src');
    const boot = await importedBoot(pack.manifest, pack.digest, cache);
    expect(fs.readFileSync(boot.packed.kernel)).toEqual(kernel);
  });

  test('a flipped byte in the stored kernel is refused, and nothing is left in the cache', async () => {
    const file = path.join(dir, 'a.smolmachine');
    await compressedPack(file);
    const s = PackFile.open(file).section('kernel')!;
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    // Past the gzip header, in the deflate stream.
    const at = s.fileOffset + Math.floor(s.size / 2);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0x10;
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    const cache = path.join(dir, 'cache');
    await expect(extractSection(PackFile.open(file), 'kernel', cache)).rejects.toThrow(
      /not a usable \.smolmachine: its kernel section (does not decompress|does not match its sha256|inflates to more than)/,
    );
    expect(cacheFiles(cache)).toEqual([]);
    await expect(PackFile.open(file).verify()).rejects.toThrow(/its kernel section does not match its sha256/);
  });

  test('a cut-short gzip stream, one inflating past its size and a wrong uncompressed sha256 are refused', async () => {
    const gz = zlib.gzipSync(kernel);
    const cache = path.join(dir, 'cache');
    const cases: Array<[string, Buffer, { size: number; sha256: string }, RegExp]> = [
      ['cut', gz.subarray(0, gz.length - 100), { size: kernel.length, sha256: sha(kernel) }, /does not decompress/],
      ['bomb', gz, { size: 1000, sha256: sha(kernel.subarray(0, 1000)) }, /inflates to more than its 1000 bytes/],
      ['short', gz, { size: kernel.length + 1, sha256: sha(kernel) }, /does not match its uncompressed_sha256/],
      ['digest', gz, { size: kernel.length, sha256: 'f'.repeat(64) }, /does not match its uncompressed_sha256/],
    ];
    for (const [name, stored, described, why] of cases) {
      const file = path.join(dir, `${name}.smolmachine`);
      await forged(file, stored, described);
      // The stored bytes are what the table says: only inflating them shows the damage.
      await PackFile.open(file).verify();
      await expect(extractSection(PackFile.open(file), 'kernel', cache)).rejects.toThrow(why);
      expect(cacheFiles(cache)).toEqual([]);
    }
  });

  test('processes racing to inflate the kernel all get the whole file, and no temp file is left', async () => {
    const file = path.join(dir, 'a.smolmachine');
    await compressedPack(file);
    const cache = path.join(dir, 'cache');
    const paths = await Promise.all(
      Array.from({ length: 4 }, () => extractSection(PackFile.open(file), 'kernel', cache)),
    );
    expect(new Set(paths).size).toBe(1);
    expect(fs.readFileSync(paths[0])).toEqual(kernel);
    expect(cacheFiles(cache)).toEqual([sha(kernel)]);
  });

  test('rebuilt from its manifest and sections (a registry pull), it is byte-identical', async () => {
    const file = path.join(dir, 'a.smolmachine');
    await compressedPack(file);
    const pack = PackFile.open(file);
    const { format: _f, version: _v, sections, ...manifest } = pack.manifest;
    const rebuilt = path.join(dir, 'b.smolmachine');
    await assemblePack({
      output: rebuilt,
      manifest,
      sections: sections.map((s) => ({
        name: s.name,
        open: () => pack.readSection(s.name),
        ...(s.compression
          ? {
              compressed: {
                compression: s.compression,
                uncompressed_size: s.uncompressed_size!,
                uncompressed_sha256: s.uncompressed_sha256!,
              },
            }
          : {}),
      })),
    });
    expect(fs.readFileSync(rebuilt)).toEqual(fs.readFileSync(file));
  });

  test('the manifest refuses an unknown compression, a compressed disk, and compression before version 3', async () => {
    const { parseManifest } = await import('../src');
    const file = path.join(dir, 'a.smolmachine');
    await compressedPack(file);
    const good = PackFile.open(file).manifest;
    const parse = (m: unknown) => parseManifest(Buffer.from(JSON.stringify(m)), 'f', Number.MAX_SAFE_INTEGER);
    const withKernel = (k: object, version = 3) => ({
      ...good,
      version,
      sections: good.sections.map((s) => (s.name === 'kernel' ? { ...s, ...k } : s)),
    });
    expect(parse(good).sections[0].compression).toBe('gzip');
    expect(() =>
      parse(withKernel({ compression: 'zstd', media_type: 'application/vnd.smolvm.kernel.vmlinux.v1+zstd' })),
    ).toThrow(
      /f is not a usable \.smolmachine: its manifest stores section kernel compressed with "zstd", which this smolvm cannot decompress \(made by a newer smolvm\?\)/,
    );
    expect(() => parse(withKernel({ media_type: 'application/vnd.smolvm.kernel.vmlinux.v1' }))).toThrow(
      /gives section kernel the media type/,
    );
    expect(() => parse(withKernel({ uncompressed_size: 2 * 1024 ** 3 }))).toThrow(/uncompressed_size/);
    expect(() => parse(withKernel({}, 2))).toThrow(/unknown field sections\[0\]\.compression/);
    const agent = good.sections[1];
    expect(() =>
      parse({
        ...good,
        sections: good.sections.map((s) =>
          s.name === 'agent'
            ? {
                ...agent,
                compression: 'gzip',
                media_type: `${agent.media_type}+gzip`,
                uncompressed_size: 1,
                uncompressed_sha256: agent.sha256,
              }
            : s,
        ),
      }),
    ).toThrow(/stores section agent compressed, and it must be stored raw/);
    await expect(
      assemblePack({
        output: path.join(dir, 'x.smolmachine'),
        manifest: base,
        sections: [
          { name: 'kernel', open: () => Readable.from([kernel]) },
          { ...rest[0], compress: 'gzip' },
        ],
      }),
    ).rejects.toThrow(/section agent is used in place and cannot be compressed/);
  });
});

describe('format version 4: the runtime (the guest runs on the Node of the packed executable)', () => {
  const MIB = 1024 * 1024;
  const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
  // A stand-in for the stub executable: three whole blocks, and a tail the runtime leaves out.
  const stubBytes = crypto.randomBytes(3 * SECTION_ALIGN + 100);
  const size = 3 * SECTION_ALIGN;
  const prefix = stubBytes.subarray(0, size);
  const runtime = { size, sha256: sha(prefix) };
  const sources = () =>
    (['kernel', 'agent', 'rootfs'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
    }));
  let cache: string;
  let cacheFile: string;
  beforeEach(() => {
    cache = path.join(dir, 'cache');
    fs.mkdirSync(cache, { mode: 0o700 });
    cacheFile = path.join(cache, 'pack', 'sections', runtime.sha256);
  });
  const write = (name: string, bytes: Buffer, mode = 0o755): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes, { mode });
    return file;
  };
  const flipped = (at: number): Buffer => {
    const b = Buffer.from(stubBytes);
    b[at] ^= 0x01;
    return b;
  };

  /** `X` and `X.smolmachine`, as `pack create` writes them (X left out with `executable` null). */
  async function sidecarPack(executable: Buffer | null = stubBytes, name = 'app') {
    const exe = path.join(dir, name);
    if (executable) write(name, executable);
    await assemblePack({ output: `${exe}.smolmachine`, manifest: base, sections: sources(), runtime });
    return { exe, pack: PackFile.open(`${exe}.smolmachine`) };
  }

  test('runtimeOf measures whole blocks; a pack with a runtime is version 4 and rebuilds byte-identical', async () => {
    expect(await runtimeOf(write('stub', stubBytes))).toEqual(runtime);
    await expect(runtimeOf(write('tiny', Buffer.alloc(4095)))).rejects.toThrow(/tiny is 4095 bytes/);
    const file = path.join(dir, 'a.smolmachine');
    const written = await assemblePack({ output: file, manifest: base, sections: sources(), runtime });
    expect(written.manifest.version).toBe(4);
    const bytes = fs.readFileSync(file);
    expect(bytes.readUInt32LE(bytes.length - FOOTER_SIZE)).toBe(4);
    const pack = PackFile.open(file);
    expect(pack.manifest.runtime).toEqual({ media_type: RUNTIME_MEDIA_TYPE, ...runtime });
    await pack.verify();
    // The runtime is described, not carried: the payload holds no byte of it.
    expect(bytes.includes(prefix.subarray(0, 64))).toBe(false);
    const { format: _f, version: _v, sections, runtime: rt, ...rest } = pack.manifest;
    const rebuilt = path.join(dir, 'b.smolmachine');
    await assemblePack({
      output: rebuilt,
      // A stale runtime in the manifest given is not what is written: the option is.
      manifest: {
        ...rest,
        runtime: { media_type: RUNTIME_MEDIA_TYPE, size: 4096, sha256: 'f'.repeat(64) },
      } as PackManifestBase,
      sections: sections.map((s) => ({ name: s.name, open: () => pack.readSection(s.name) })),
      runtime: { size: rt!.size, sha256: rt!.sha256 },
    });
    expect(fs.readFileSync(rebuilt)).toEqual(bytes);
    // Serialized again (a registry's config, a machine's pack.json), it parses the same.
    const again = parseManifest(Buffer.from(JSON.stringify(pack.manifest)), 'f', Number.MAX_SAFE_INTEGER);
    expect(again.runtime).toEqual(pack.manifest.runtime);
    expect(again.version).toBe(4);
  });

  test('a runtime of a bad size or sha256 is refused, and so is a runtime in a pack of version 3 or older', async () => {
    const file = path.join(dir, 'a.smolmachine');
    await assemblePack({ output: file, manifest: base, sections: sources(), runtime });
    const good = PackFile.open(file).manifest;
    const parse = (m: unknown) => parseManifest(Buffer.from(JSON.stringify(m)), 'f', Number.MAX_SAFE_INTEGER);
    const withRuntime = (r: object) => ({ ...good, runtime: { ...good.runtime, ...r } });
    const cases: Array<[object, RegExp]> = [
      [{ size: size + 1 }, /has a runtime size 12289 that is not a positive multiple of 4096/],
      [{ size: 0 }, /field runtime\.size is not/],
      [{ size: '4096' }, /field runtime\.size is not/],
      [{ size: 512 * MIB + 4096 }, /has a runtime of 536875008 bytes, over the 536870912-byte bound/],
      [{ sha256: runtime.sha256.toUpperCase() }, /gives the runtime a sha256 that is not 64 lowercase hex digits/],
      [{ sha256: runtime.sha256.slice(1) }, /gives the runtime a sha256 that is not 64 lowercase hex digits/],
      [{ media_type: 'application/octet-stream' }, /gives the runtime the media type application\/octet-stream/],
      [{ extra: 1 }, /unknown field runtime\.extra/],
    ];
    for (const [r, message] of cases) expect(() => parse(withRuntime(r))).toThrow(message);
    expect(() => parse({ ...good, runtime: null })).toThrow(/field runtime is not an object/);
    // What an older smolvm says of it, and this one of an older version that claims a runtime.
    for (const version of [1, 2, 3]) expect(() => parse({ ...good, version })).toThrow(/unknown field runtime/);
    const { runtime: _r, ...without } = good;
    expect(parse({ ...without, version: 3 }).runtime).toBeUndefined();
    await expect(
      assemblePack({
        output: path.join(dir, 'x.smolmachine'),
        manifest: base,
        sections: sources(),
        runtime: { size: 100, sha256: runtime.sha256 },
      }),
    ).rejects.toThrow(/runtime size 100 that is not a positive multiple of 4096/);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('x.') || f.startsWith('.x'))).toEqual([]);
  });

  test('found beside a sidecar and in a single-file pack (whose bytes after it differ), used in place', async () => {
    const { exe, pack } = await sidecarPack();
    const inPlace = (file: string) => ({
      path: fs.realpathSync(file),
      range: { offset: 0, size },
      sha256: runtime.sha256,
    });
    expect(await runtimeDisk(pack, cache)).toEqual(inPlace(exe));
    expect((await packedBoot(pack, cache)).packed.runtime).toEqual(inPlace(exe));
    const single = path.join(dir, 'single');
    await assemblePack({
      output: single,
      manifest: base,
      sections: sources(),
      prefix: write('stub', stubBytes),
      runtime,
    });
    const singlePack = PackFile.open(single);
    // The stub's tail, padding and the payload follow its first `size` bytes.
    expect(singlePack.payloadStart).toBe(4 * SECTION_ALIGN);
    expect(fs.readFileSync(single).subarray(size, size + 100)).toEqual(stubBytes.subarray(size));
    expect(await runtimeDisk(singlePack, cache)).toEqual(inPlace(single));
    // Nothing went to the cache: both were used where they are.
    expect(fs.existsSync(cacheFile)).toBe(false);
    // A pack without a runtime has none.
    const plain = path.join(dir, 'plain.smolmachine');
    await makePack(plain);
    expect(await runtimeDisk(PackFile.open(plain), cache)).toBeUndefined();
    expect((await packedBoot(PackFile.open(plain), cache)).packed.runtime).toBeUndefined();
  });

  test("from the caller's candidates in order (one flipped byte refused, the next used), then the cache", async () => {
    const { pack } = await sidecarPack(null);
    const short = write('short', stubBytes.subarray(0, size - SECTION_ALIGN));
    const bad = write('bad', flipped(size - 1));
    // Its bytes after `size` are another file's: not part of the runtime.
    const good = write('good', Buffer.concat([prefix, crypto.randomBytes(5000)]));
    const missing = path.join(dir, 'missing');
    expect(await runtimeDisk(pack, cache, [missing, short, bad, good])).toEqual({
      path: fs.realpathSync(good),
      range: { offset: 0, size },
      sha256: runtime.sha256,
    });
    expect(fs.existsSync(cacheFile)).toBe(false);
    // Imported (as `machine create --from` does), it is in the cache, owner-only, and found there.
    await importSections(pack, cache, [bad, good]);
    expect(fs.readFileSync(cacheFile)).toEqual(prefix);
    expect(fs.statSync(cacheFile).mode & 0o777).toBe(0o600);
    expect(await runtimeDisk(pack, cache, [bad])).toEqual({ path: cacheFile, sha256: runtime.sha256 });
  });

  test('none found: one line naming the runtime, every place looked at, and what to do', async () => {
    const { exe, pack } = await sidecarPack(null);
    const bad = write('bad', flipped(5));
    const err = (await runtimeDisk(pack, cache, [bad]).catch((e: unknown) => e)) as NotFoundError;
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toBe(
      `${pack.path}: its guest runs on the Node of the executable it was packed with (runtime sha256 ` +
        `${runtime.sha256.slice(0, 12)}, ${size} bytes), and none of the places looked at has it: ` +
        `${exe} (missing); ${bad} (other bytes); ${cacheFile} (missing)`,
    );
    expect(err.remedy).toBe(
      `keep the executable it was packed with beside the .smolmachine (as ${exe}), or pull the pack again (smolvm pack pull REF)`,
    );
    expect(formatError(err)).not.toContain('\n');
    await expect(packedBoot(pack, cache, [bad])).rejects.toThrow(err.message);
    await expect(importSections(pack, cache)).rejects.toThrow(NotFoundError);
    // A single-file executable whose stub was changed: its sections verify, its runtime does not.
    const single = path.join(dir, 'single');
    await assemblePack({ output: single, manifest: base, sections: sources(), prefix: flipped(100), runtime });
    const singlePack = PackFile.open(single);
    await singlePack.verify(cache);
    const changed = (await runtimeDisk(singlePack, cache).catch((e: unknown) => e)) as NotFoundError;
    expect(changed).toBeInstanceOf(NotFoundError);
    expect(changed.message).toContain(`has it: ${single} (other bytes); ${cacheFile} (missing)`);
    expect(changed.remedy).toBe(
      'get the executable again from where it came from (its first bytes changed), or pull the pack again (smolvm pack pull REF)',
    );
  });

  test('a candidate others can write is copied into the cache, not used in place; racing copies make one file', async () => {
    const { exe, pack } = await sidecarPack();
    fs.chmodSync(exe, 0o666);
    const disks = await Promise.all(Array.from({ length: 4 }, () => runtimeDisk(PackFile.open(pack.path), cache)));
    for (const disk of disks) expect(disk).toEqual({ path: cacheFile, sha256: runtime.sha256 });
    // One whole file, no temp file left.
    expect(fs.readdirSync(path.dirname(cacheFile))).toEqual([runtime.sha256]);
    expect(fs.readFileSync(cacheFile)).toEqual(prefix);
    expect(fs.statSync(cacheFile).mode & 0o777).toBe(0o600);
    // One that others can write and that does not match leaves nothing in the cache.
    fs.rmSync(cacheFile);
    fs.writeFileSync(exe, flipped(0));
    await expect(runtimeDisk(pack, cache)).rejects.toThrow(`${exe} (other bytes)`);
    expect(fs.readdirSync(path.dirname(cacheFile))).toEqual([]);
  });

  test('a verified candidate is remembered per file identity: not hashed again until it changes', async () => {
    const { exe, pack } = await sidecarPack();
    const real = fs.realpathSync(exe);
    const spy = jest.spyOn(fs, 'createReadStream');
    const reads = () => spy.mock.calls.filter((c) => c[0] === real).length;
    try {
      await runtimeDisk(pack, cache);
      expect(reads()).toBe(1);
      expect(fs.readdirSync(path.join(cache, 'pack', 'verified'))).toHaveLength(1);
      expect((await runtimeDisk(pack, cache))?.range).toEqual({ offset: 0, size });
      expect(reads()).toBe(1);
      // Changed with its old mtime: a new identity (ctime), so hashed again, and refused.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const { mtime } = fs.statSync(exe);
      const fd = fs.openSync(exe, 'r+');
      fs.writeSync(fd, Buffer.from([stubBytes[9] ^ 1]), 0, 1, 9);
      fs.closeSync(fd);
      fs.utimesSync(exe, mtime, mtime);
      await expect(runtimeDisk(pack, cache)).rejects.toThrow(NotFoundError);
      expect(reads()).toBe(2);
    } finally {
      spy.mockRestore();
    }
  });

  test('machines made from it boot the runtime from the cache, imported again if the cache lost it', async () => {
    const { exe, pack } = await sidecarPack();
    await importSections(pack, cache);
    expect(fs.readFileSync(cacheFile)).toEqual(prefix);
    // The machine no longer needs the executable.
    fs.rmSync(exe);
    const boot = await importedBoot(pack.manifest, pack.digest, cache, pack.path);
    expect(boot.packed.runtime).toEqual({ path: cacheFile, sha256: runtime.sha256 });
    // The cache lost it: refused while the executable is gone too, imported again once it is back.
    fs.rmSync(cacheFile);
    await expect(importedBoot(pack.manifest, pack.digest, cache, pack.path)).rejects.toThrow(NotFoundError);
    write('app', stubBytes);
    expect((await importedBoot(pack.manifest, pack.digest, cache, pack.path)).packed.runtime).toEqual({
      path: cacheFile,
      sha256: runtime.sha256,
    });
    // Or from a file the caller names.
    fs.rmSync(cacheFile);
    fs.rmSync(exe);
    const other = write('other', stubBytes);
    expect((await importedBoot(pack.manifest, pack.digest, cache, pack.path, [other])).packed.runtime?.path).toBe(
      cacheFile,
    );
    expect(fs.readFileSync(cacheFile)).toEqual(prefix);
  });
});
