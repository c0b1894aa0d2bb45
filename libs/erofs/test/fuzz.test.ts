// Seeded random layer stacks against the naive model: every seed is reproducible, and a failure
// names it.
import fs from 'node:fs';
import path from 'node:path';
import { buildErofsFromLayers, InvalidLayerError } from '../src';
import { tarLayer, zstdAvailable, type TestCompression } from './helpers/layers';
import { Model, expectImageMatches, type ModelInode } from './helpers/model';
import { makeTar, type TarSpec } from './helpers/tar-writer';
import { listDir, tempDir } from './helpers/tools';

const BT = 1_650_000_000;
const SEEDS = Array.from({ length: 50 }, (_, i) => i + 1);

function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n) as number;
  };
}

const NAMES = ['a', 'b', 'c', 'dd', '.dot', 'sp ace', 'ü'];
const SIZES = [0, 1, 100, 3000, 3100, 4095, 4096, 4097, 8191, 12288, 20000];
const MODES = [0o644, 0o755, 0o600, 0o4755, 0o2755, 0o1777, 0o000, 0o777];
const IDS = [0, 1000, 65535, 65536, 4_000_000_000];
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

function generate(seed: number): { layers: Array<{ tar: Buffer; how: TestCompression }>; model: Model } {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[r(xs.length)];
  const model = new Model(BT);
  const layers: Array<{ tar: Buffer; how: TestCompression }> = [];
  const compressions: TestCompression[] = zstdAvailable ? ['none', 'gzip', 'zstd'] : ['none', 'gzip'];
  const randomPath = (): string => Array.from({ length: 1 + r(3) }, () => pick(NAMES)).join('/');
  const attrs = (): Pick<ModelInode, 'mode' | 'uid' | 'gid' | 'mtime' | 'mtimeNsec' | 'xattrs'> => {
    const xattrs: Record<string, Buffer> = {};
    if (r(4) === 0) xattrs['user.k'] = Buffer.from(Array.from({ length: r(40) }, () => r(256)));
    if (r(6) === 0) xattrs['security.capability'] = CAP;
    return {
      mode: pick(MODES),
      uid: pick(IDS),
      gid: pick(IDS),
      mtime: r(3) === 0 ? BT + r(1000) : BT,
      mtimeNsec: r(5) === 0 ? r(1_000_000_000) : 0,
      xattrs,
    };
  };
  const spec = (p: string, a: ReturnType<typeof attrs>): Partial<TarSpec> => ({
    path: p,
    mode: a.mode,
    uid: a.uid,
    gid: a.gid,
    mtime: a.mtime,
    mtimeNsec: a.mtimeNsec,
    xattrs: a.xattrs,
  });

  const nLayers = 2 + r(4);
  for (let L = 0; L < nLayers; L++) {
    const entries: TarSpec[] = [];
    const ops = 1 + r(25);
    for (let i = 0; i < ops; i++) {
      const p = randomPath();
      if (!model.parentsOk(p)) continue;
      const a = attrs();
      const op = r(100);
      if (op < 30) {
        const size = r(4) === 0 ? r(30000) : pick(SIZES);
        const content = Buffer.from(Array.from({ length: size }, (_, k) => (k * 31 + seed + L) & 0xff));
        entries.push({ ...spec(p, a), type: 'file', content } as TarSpec);
        model.add(p, { type: 'file', ...a, content }, L);
      } else if (op < 42) {
        entries.push({ ...spec(p, a), type: 'dir' } as TarSpec);
        model.add(p, { type: 'dir', ...a, children: new Map() }, L);
      } else if (op < 50) {
        const target = pick(['a', '../b', '/c/dd', 'sp ace/ü', '.']);
        entries.push({ ...spec(p, a), type: 'symlink', linkPath: target } as TarSpec);
        model.add(p, { type: 'symlink', ...a, mode: 0o777, target }, L);
      } else if (op < 60) {
        const targets = [...model.flatten()].filter(([, m]) => m.type !== 'dir').map(([tp]) => tp.slice(1));
        if (targets.length === 0) continue;
        const target = pick(targets);
        entries.push({ path: p, type: 'hardlink', linkPath: r(2) ? target : `/${target}` });
        model.link(p, target, L);
      } else if (op < 64) {
        const major = r(300);
        const minor = r(2) ? r(256) : r(1 << 20);
        entries.push({ ...spec(p, a), type: 'chardev', devMajor: major, devMinor: minor } as TarSpec);
        model.add(p, { type: 'chardev', ...a, major, minor }, L);
      } else if (op < 67) {
        entries.push({ ...spec(p, a), type: 'fifo' } as TarSpec);
        model.add(p, { type: 'fifo', ...a }, L);
      } else if (op < 85) {
        const parts = p.split('/');
        const name = parts.pop() as string;
        entries.push({ path: [...parts, `.wh.${name}`].join('/') });
        model.whiteout(p, L);
      } else if (op < 95) {
        const d = p.split('/').slice(0, -1).join('/');
        const existing = d === '' ? undefined : model.get(d);
        if (existing && existing.inode.type !== 'dir') continue;
        entries.push({ path: d === '' ? '.wh..wh..opq' : `${d}/.wh..wh..opq` });
        model.opaque(d, L);
      } else {
        entries.push({ ...spec('./', a), type: 'dir' } as TarSpec);
        Object.assign(model.root, a);
      }
    }
    layers.push({ tar: makeTar(entries), how: pick(compressions) });
  }
  return { layers, model };
}

describe('random layer stacks', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('erofs-fuzz-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test.each(SEEDS)('seed %i matches the model', async (seed) => {
    const { layers, model } = generate(seed);
    const out = path.join(dir, `seed-${seed}.erofs`);
    await buildErofsFromLayers(
      layers.map((l, i) => tarLayer(l.tar, l.how, { seed: seed * 10 + i, maxChunk: 1 + (seed % 7) * 900 })),
      out,
      { buildTime: BT },
    );
    expectImageMatches(out, model.flatten(), { extract: seed % 5 === 0 });
    fs.rmSync(out);
  });

  test.each(SEEDS.slice(0, 20))(
    'seed %i: corrupting one byte fails cleanly or still yields a valid image',
    async (seed) => {
      // Flipping a byte may hit file data (still a valid tar) or a header (must be a clean typed error);
      // either way nothing but a complete image may be left behind.
      const { layers } = generate(seed);
      const r = rng(seed * 7919);
      const victim = r(layers.length);
      const tar = Buffer.from(layers[victim].tar);
      tar[r(tar.length)] ^= 1 + r(255);
      const out = path.join(dir, `corrupt-${seed}.erofs`);
      const sources = layers.map((l, i) => tarLayer(i === victim ? tar : l.tar, l.how));
      const err = await buildErofsFromLayers(sources, out, { buildTime: BT }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err) {
        expect(err).toBeInstanceOf(InvalidLayerError);
        expect((err as InvalidLayerError).layerIndex).toBe(victim);
        expect(listDir(dir).filter((f) => f.includes(`corrupt-${seed}`))).toEqual([]);
      } else {
        expect(listDir(dir).filter((f) => f.includes(`corrupt-${seed}`))).toEqual([`corrupt-${seed}.erofs`]);
        fs.rmSync(out);
      }
    },
  );
});
