// tar -> erofs: our TypeScript writer (@smolvm/erofs, straight from the tar stream, in this
// process after a warm-up) against mkfs.erofs (erofs-utils) on the same tree unpacked by tar as
// root, in the same run, interleaved. Both produce uncompressed images; ours is checked with fsck.erofs.
//   node tools/run-ts.mjs tools/bench/erofs.ts [runs=5] [randomMB=40] [smallFiles=3000]
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildErofsFromLayers } from '@smolvm/erofs';
import { MediaType } from '@smolvm/oci';
import { busyboxRootfs } from '../fixtures/images';
import { tarEntries, type TarEntry } from '../fixtures/tar';
import { median, report, timeCommand, type Series } from './lib/stats';

const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore'.split(
  ' ',
);

function tree(randomMB: number, smallFiles: number): TarEntry[] {
  const entries: TarEntry[] = [...busyboxRootfs(), { path: 'srv', type: 'dir' }];
  for (let d = 0; d < 100; d++) entries.push({ path: `srv/d${d}`, type: 'dir' });
  const text = Array.from({ length: 2000 }, (_, n) => WORDS[(n * 31) % WORDS.length]).join(' ');
  for (let i = 0; i < smallFiles; i++) {
    // 1-8 KiB of compressible text, each file different.
    const start = (i * 131) % 2000;
    entries.push({
      path: `srv/d${i % 100}/f${i}.txt`,
      type: 'file',
      content: `${i}\n${text.slice(start, start + 1024 + ((i * 7919) % 7168))}`,
    });
  }
  for (let i = 0; i < randomMB; i++)
    entries.push({ path: `srv/blob${i}.bin`, type: 'file', content: crypto.randomBytes(1024 * 1024) });
  return entries;
}

async function ours(tar: string, out: string): Promise<number> {
  fs.rmSync(out, { force: true });
  const start = process.hrtime.bigint();
  await buildErofsFromLayers([{ open: () => fs.createReadStream(tar), mediaType: MediaType.OciLayer }], out);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 5);
  const randomMB = Number(process.argv[3] ?? 40);
  const smallFiles = Number(process.argv[4] ?? 3000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-erofs-'));
  try {
    const tar = path.join(work, 'layer.tar');
    fs.writeFileSync(tar, tarEntries(tree(randomMB, smallFiles)));
    const tarBytes = fs.statSync(tar).size;
    const unpacked = path.join(work, 'rootfs');
    fs.mkdirSync(unpacked);
    const untar = (): number =>
      timeCommand(['tar', '-xpf', tar, '--same-owner', '--xattrs', '--xattrs-include=*', '-C', unpacked]);
    untar();
    const oursOut = path.join(work, 'ours.erofs');
    const mkfsOut = path.join(work, 'mkfs.erofs');
    const mkfs = (): number => {
      fs.rmSync(mkfsOut, { force: true });
      return timeCommand(['mkfs.erofs', '--quiet', mkfsOut, unpacked]);
    };

    await ours(tar, oursOut);
    const fsck = spawnSync('fsck.erofs', [oursOut], { encoding: 'utf8' });
    if (fsck.status !== 0) throw new Error(`fsck.erofs rejected our image: ${fsck.stdout}${fsck.stderr}`);
    mkfs();

    const seriesMkfs: Series = { label: 'mkfs.erofs (unpacked tree)', samples: [] };
    const seriesUntarMkfs: Series = { label: 'tar -x + mkfs.erofs', samples: [] };
    const seriesOurs: Series = { label: '@smolvm/erofs from tar', samples: [] };
    for (let i = 0; i < runs; i++) {
      const m = mkfs();
      seriesMkfs.samples.push(m);
      fs.rmSync(unpacked, { recursive: true, force: true });
      fs.mkdirSync(unpacked);
      seriesUntarMkfs.samples.push(untar() + m);
      seriesOurs.samples.push(await ours(tar, oursOut));
    }
    const mb = tarBytes / 1e6;
    report(
      `tar -> erofs: ${mb.toFixed(1)} MB tar, ${smallFiles} small files + ${randomMB} x 1 MiB + busybox rootfs, ${runs} interleaved runs`,
      [seriesMkfs, seriesUntarMkfs, seriesOurs],
    );
    for (const s of [seriesMkfs, seriesUntarMkfs, seriesOurs])
      console.log(`  ${s.label}: ${(mb / (median(s.samples) / 1000)).toFixed(0)} MB/s of tar (median)`);
    console.log(
      `  image sizes: ours ${fs.statSync(oursOut).size} bytes, mkfs.erofs ${fs.statSync(mkfsOut).size} bytes`,
    );
    console.log(
      `  ratio ours/mkfs.erofs (time): ${(median(seriesOurs.samples) / median(seriesMkfs.samples)).toFixed(2)}x; ours/(tar -x + mkfs.erofs): ${(median(seriesOurs.samples) / median(seriesUntarMkfs.samples)).toFixed(2)}x`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
