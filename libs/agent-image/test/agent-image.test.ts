import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openErofs } from '@smolvm/erofs';
import { fuseOffset } from '@smolvm/sea';
import {
  DEFAULT_NODE_FLAGS,
  RUNTIME_DISK_ID,
  UNUSED_IMAGE_MS,
  agentKernelArgs,
  ensureAgentImage,
  findStaticBusybox,
  hasSymbolTable,
  readElf,
  resolveLibraries,
} from '../src';

jest.setTimeout(180_000);

let work: string;
let bundle: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-agent-image-'));
  bundle = path.join(work, 'agent.js');
  fs.writeFileSync(bundle, '"use strict";\nconsole.log("agent");\n');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('ELF and libraries', () => {
  it('reads node: its interpreter and needed libraries, resolved to files', () => {
    const elf = readElf(process.execPath);
    expect(elf?.interpreter).toMatch(/ld-linux/);
    expect(elf?.needed).toContain('libc.so.6');
    const libs = resolveLibraries([process.execPath]);
    expect([...libs.files.keys()].some((p) => p.endsWith('/libc.so.6'))).toBe(true);
    expect(libs.files.has(elf?.interpreter as string)).toBe(true);
    for (const real of libs.files.values()) expect(fs.statSync(real).isFile()).toBe(true);
  });

  it('is null for a non-ELF file', () => {
    expect(readElf(bundle)).toBeNull();
    expect(hasSymbolTable(bundle)).toBe(false);
  });
});

describe('ensureAgentImage', () => {
  it('builds a valid erofs with node, its libraries, busybox, koffi, the bundle and init', async () => {
    const cacheDir = path.join(work, 'cache-a');
    const img = await ensureAgentImage({ cacheDir, agentBundle: bundle });
    expect(img.built).toBe(true);
    expect(img.path).toBe(path.join(cacheDir, 'agent', `${img.key}.erofs`));
    expect(img.kernelArgs).toEqual(agentKernelArgs());
    execFileSync('fsck.erofs', [img.path], { stdio: 'pipe' });

    const r = openErofs(img.path);
    try {
      const entry = (p: string) => r.lookup(p);
      const node = entry('/opt/smolvm/node');
      // Shipped without its symbol table: smaller, and the same node (version, JS stack traces).
      expect(node?.size).toBeLessThan(fs.statSync(process.execPath).size);
      expect(node?.mode).toBe(0o755);
      const shipped = path.join(work, 'shipped-node');
      fs.writeFileSync(shipped, r.readFile('/opt/smolvm/node'), { mode: 0o755 });
      expect(hasSymbolTable(process.execPath)).toBe(true);
      expect(hasSymbolTable(shipped)).toBe(false);
      const script = 'function named() { return new Error("x").stack; } console.log(process.version, named())';
      const out = execFileSync(shipped, ['-e', script], { encoding: 'utf8' });
      expect(out).toContain(process.version);
      expect(out).toMatch(/at named \(/);
      expect(node?.uid).toBe(0);
      expect(entry('/bin/busybox')?.type).toBe('file');
      expect(entry('/bin/sh')?.linkTarget?.toString()).toBe('/bin/busybox');
      expect(entry('/sbin/reboot')?.linkTarget?.toString()).toBe('/bin/busybox');
      const interp = readElf(process.execPath)?.interpreter as string;
      expect(entry(interp)?.type).toBe('file');
      for (const lib of resolveLibraries([process.execPath]).files.keys()) expect(entry(lib)).toBeDefined();
      expect(r.readFile('/opt/smolvm/agent.js').toString()).toContain('console.log("agent")');
      expect(entry('/opt/smolvm/node_modules/koffi/package.json')).toBeDefined();
      expect(r.list().some((e) => e.path.startsWith('/opt/smolvm/node_modules/') && e.path.endsWith('.node'))).toBe(
        true,
      );
      const init = r.readFile('/init').toString();
      expect(entry('/init')?.mode).toBe(0o755);
      expect(init).toMatch(/^#!\/bin\/busybox sh\n/);
      expect(init).toContain(`/opt/smolvm/node ${DEFAULT_NODE_FLAGS.join(' ')} /opt/smolvm/agent.js`);
      expect(r.readFile('/etc/passwd').toString()).toMatch(/^root:x:0:0:/);
      expect(JSON.parse(r.readFile('/etc/smolvm-agent-image').toString())).toMatchObject({
        format: 2,
        node: process.version,
      });
      expect(entry('/tmp')?.mode).toBe(0o1777);
      for (const dir of ['/proc', '/sys', '/dev', '/run']) expect(entry(dir)?.type).toBe('dir');
    } finally {
      r.close();
    }
    // Staging is gone; only the image (and the hash memo) remain.
    expect(fs.readdirSync(path.join(cacheDir, 'agent')).sort()).toEqual([`${img.key}.erofs`, 'input-hashes.json']);
  });

  it('ships a node that has no symbol table as it is', async () => {
    const cacheDir = path.join(work, 'cache-stripped');
    const stripped = path.join(work, 'node-stripped');
    execFileSync('strip', ['--strip-all', '-o', stripped, process.execPath]);
    expect(hasSymbolTable(stripped)).toBe(false);
    const img = await ensureAgentImage({ cacheDir, agentBundle: bundle, node: stripped });
    const r = openErofs(img.path);
    try {
      expect(r.readFile('/opt/smolvm/node').equals(fs.readFileSync(stripped))).toBe(true);
    } finally {
      r.close();
    }
  });

  // Issue 15: a pack's guest runs on the packed executable's own Node, read from it as a disk.
  it('with a runtime: no node of its own, and a runtime.erofs that reads the executable as plain node', async () => {
    const cacheDir = path.join(work, 'cache-runtime');
    // A single executable's bytes (its fuse set); it never runs here, only plain copies of it do.
    const plain = fs.readFileSync(process.execPath);
    const stub = Buffer.from(plain);
    const at = fuseOffset(stub);
    expect(stub[at]).toBe(0x30);
    stub[at] = 0x31;
    const exe = path.join(work, 'stub-exe');
    fs.writeFileSync(exe, stub, { mode: 0o755 });
    const size = Math.floor(stub.length / 4096) * 4096;
    expect(stub.length % 4096).not.toBe(0);
    const sha256 = crypto.createHash('sha256').update(stub.subarray(0, size)).digest('hex');
    const img = await ensureAgentImage({ cacheDir, agentBundle: bundle, runtime: { executable: exe, size, sha256 } });
    expect(img.runtimeDiskId).toBe(RUNTIME_DISK_ID);
    execFileSync('fsck.erofs', [img.path], { stdio: 'pipe' });
    // No second Node: the image is what is left (busybox, libraries, koffi, the bundle).
    expect(fs.statSync(img.path).size).toBeLessThan(40 * 1024 * 1024);
    const r = openErofs(img.path);
    const runtimeImage = path.join(work, 'runtime.erofs');
    try {
      expect(r.lookup('/opt/smolvm/node')?.linkTarget?.toString()).toBe('runtime/node');
      expect(r.lookup('/opt/smolvm/runtime')?.type).toBe('dir');
      const init = r.readFile('/init').toString();
      expect(init).toContain(`= ${RUNTIME_DISK_ID} ]`);
      expect(init).toContain('mount -t erofs -o ro,loop,device=$rt /opt/smolvm/runtime.erofs /opt/smolvm/runtime');
      expect(init.indexOf('device=$rt')).toBeLessThan(init.indexOf('/opt/smolvm/agent.js'));
      expect(JSON.parse(r.readFile('/etc/smolvm-agent-image').toString())).toMatchObject({ node: process.version });
      fs.writeFileSync(runtimeImage, r.readFile('/opt/smolvm/runtime.erofs'));
    } finally {
      r.close();
    }
    // Read with the executable as its second device: exactly plain node (the fuse reset, the tail past the last block).
    const rt = openErofs(runtimeImage, { devices: [exe] });
    try {
      expect(rt.lookup('/node')?.mode).toBe(0o755);
      const node = rt.readFile('/node');
      expect(node.length).toBe(plain.length);
      expect(node.equals(plain)).toBe(true);
    } finally {
      rt.close();
    }
    expect(fs.statSync(runtimeImage).size).toBeLessThan(1024 * 1024);
    // Keyed by the runtime's digest: another executable is another image.
    const other = await ensureAgentImage({
      cacheDir,
      agentBundle: bundle,
      runtime: { executable: exe, size, sha256: 'f'.repeat(64) },
    });
    expect(other.key).not.toBe(img.key);
    await expect(
      // An executable that is not a Node single executable.
      ensureAgentImage({
        cacheDir,
        agentBundle: bundle,
        runtime: { executable: findStaticBusybox(), size: 0, sha256 },
      }),
    ).rejects.toThrow(/single-executable fuse/);
  });

  it('reuses the cached image and keys it by content', async () => {
    const cacheDir = path.join(work, 'cache-b');
    const first = await ensureAgentImage({ cacheDir, agentBundle: bundle });
    const again = await ensureAgentImage({ cacheDir, agentBundle: bundle });
    expect(again).toEqual({ ...first, built: false });
    const other = path.join(work, 'agent2.js');
    fs.writeFileSync(other, '"use strict";\nconsole.log("agent v2");\n');
    const changed = await ensureAgentImage({ cacheDir, agentBundle: other });
    expect(changed.key).not.toBe(first.key);
    expect(changed.built).toBe(true);
  });

  // Issue 14, item 7: the image is what every VM boots as its root.
  it('refuses a cached image another user could have written, with a remedy', async () => {
    const cacheDir = path.join(work, 'cache-untrusted');
    const first = await ensureAgentImage({ cacheDir, agentBundle: bundle });
    fs.chmodSync(first.path, 0o666);
    await expect(ensureAgentImage({ cacheDir, agentBundle: bundle })).rejects.toThrow(
      /^refusing .*\.erofs: it is writable by its group and other users \(mode 666\)$/,
    );
    fs.chmodSync(first.path, 0o600);
    fs.chmodSync(path.join(cacheDir, 'agent'), 0o777);
    // Its own directory is tightened back to 0700 (a lax umask), then the image is trusted again.
    expect((await ensureAgentImage({ cacheDir, agentBundle: bundle })).built).toBe(false);
    expect(fs.statSync(path.join(cacheDir, 'agent')).mode & 0o777).toBe(0o700);
  });

  it('concurrent callers end with one valid image and no leftovers', async () => {
    const cacheDir = path.join(work, 'cache-c');
    const results = await Promise.all([1, 2, 3].map(() => ensureAgentImage({ cacheDir, agentBundle: bundle })));
    expect(new Set(results.map((r) => r.path)).size).toBe(1);
    execFileSync('fsck.erofs', [results[0].path], { stdio: 'pipe' });
    const left = fs.readdirSync(path.join(cacheDir, 'agent')).filter((n) => n.startsWith('.'));
    expect(left).toEqual([]);
  });

  it('with a host-built snapshot: ships the blob and falls back to the bundle when it does not load', async () => {
    const real = path.join(work, 'real-agent.js');
    // A minimal snapshot entry: the blob must be a real one built by this node.
    fs.writeFileSync(
      real,
      'const v8 = require("v8");\nif (v8.startupSnapshot.isBuildingSnapshot()) v8.startupSnapshot.setDeserializeMainFunction(() => {});\n',
    );
    const img = await ensureAgentImage({ cacheDir: path.join(work, 'cache-d'), agentBundle: real, snapshot: 'host' });
    const r = openErofs(img.path);
    try {
      expect(r.lookup('/opt/smolvm/agent.blob')?.size).toBeGreaterThan(100_000);
      const init = r.readFile('/init').toString();
      expect(init).toContain('--snapshot-blob /opt/smolvm/agent.blob');
      expect(init).toContain('[ $? -eq 14 ] && ');
    } finally {
      r.close();
    }
  });

  it('a new image removes the images (and their blobs) no start used for a day; a start marks its image used', async () => {
    const cacheDir = path.join(work, 'cache-gc');
    const old = await ensureAgentImage({ cacheDir, agentBundle: bundle, nodeFlags: ['--stack-size=900'] });
    const recent = await ensureAgentImage({ cacheDir, agentBundle: bundle, nodeFlags: ['--stack-size=901'] });
    const blob = path.join(cacheDir, 'agent', `${old.key}.tcg-test.blob`);
    fs.writeFileSync(blob, 'blob');
    const dayAgo = new Date(Date.now() - UNUSED_IMAGE_MS - 60_000);
    for (const f of [old.path, recent.path]) fs.utimesSync(f, dayAgo, dayAgo);
    // A start of `recent` marks it used; `old` stays unused.
    expect((await ensureAgentImage({ cacheDir, agentBundle: bundle, nodeFlags: ['--stack-size=901'] })).built).toBe(
      false,
    );
    const fresh = await ensureAgentImage({ cacheDir, agentBundle: bundle, nodeFlags: ['--stack-size=902'] });
    expect(fresh.built).toBe(true);
    expect(fs.existsSync(old.path)).toBe(false);
    expect(fs.existsSync(blob)).toBe(false);
    expect(fs.existsSync(recent.path)).toBe(true);
    expect(fs.existsSync(fresh.path)).toBe(true);
  });

  it('says what to do when the bundle is missing', async () => {
    await expect(
      ensureAgentImage({ cacheDir: path.join(work, 'cache-e'), agentBundle: path.join(work, 'nope.js') }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/agent bundle .*nope\.js does not exist/),
      remedy: expect.stringMatching(/npx nx build guest-agent/),
    });
  });
});
