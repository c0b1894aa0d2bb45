// Elastic memory benchmark (issue "machines, part 2", item 3), one run on this machine:
//   idle:  host memory of an idle running machine (256 MiB guest): supervisor + QEMU, VmRSS and
//          RssAnon (RssFile is mostly the node and QEMU binaries, shared with every other copy)
//   touch: a 1536 MiB machine touches 1 GiB (tmpfs in the guest) and frees it: QEMU's RSS before,
//          at the peak, then every 2 s for 12 s
// Each CLI given is measured the same way in the same run, so a baseline build can be compared:
//   node tools/run-ts.mjs tools/bench/memory.ts [other-cli.js ...]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WORKSPACE } from './lib/stats';

const clis = [path.join(WORKSPACE, 'apps/cli/dist/smolvm.js'), ...process.argv.slice(2).map((p) => path.resolve(p))];
const IDLE_SETTLE_MS = 8_000;

interface Mem {
  rss: number;
  anon: number;
}

function memOf(pid: number): Mem {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

const fmt = (m: Mem) => `${m.rss.toFixed(0)} MiB (anon ${m.anon.toFixed(0)})`;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function measure(cli: string): void {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-bench-memory-'));
  const env = { ...process.env, SMOLVM_HOME: path.join(work, 'home'), SMOLVM_NO_TCG_WARNING: '1' };
  const must = (...args: string[]): string => {
    const r = spawnSync(cli, args, { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`smolvm ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
  const pids = (name: string) => {
    const rec = JSON.parse(
      fs.readFileSync(path.join(env.SMOLVM_HOME, 'data/machines', name, 'machine.json'), 'utf8'),
    ) as { runtime: { pid: number; vm: { pid: number } } };
    return { supervisor: rec.runtime.pid, qemu: rec.runtime.vm.pid };
  };
  // Booted machines: restored ones have their RAM in the boot snapshot's file and no balloon. A
  // baseline CLI from before `machine start --cold` existed always boots.
  const help = spawnSync(cli, ['machine', 'start', '--help'], { env, encoding: 'utf8' }).stdout;
  const startFlags = help.includes('--cold') ? ['--cold'] : [];
  console.log(`\n${cli}`);
  try {
    must('machine', 'create', 'idle', '--cpus', '1', '--memory', '256', '--storage', '1', '--overlay', '1');
    must('machine', 'start', '--name', 'idle', ...startFlags);
    for (let i = 0; i < 3; i++) must('machine', 'exec', '--name', 'idle', '--', 'true');
    const guestUsed = must(
      'machine',
      'exec',
      '--name',
      'idle',
      '--',
      'sh',
      '-c',
      "awk '/MemTotal/{t=$2} /MemFree/{f=$2} END{print int((t-f)/1024)}' /proc/meminfo",
    ).trim();
    sleep(IDLE_SETTLE_MS);
    const idle = pids('idle');
    const sup = memOf(idle.supervisor);
    const qemu = memOf(idle.qemu);
    console.log(
      `idle 256 MiB machine: supervisor ${fmt(sup)} + QEMU ${fmt(qemu)} = ${(sup.rss + qemu.rss).toFixed(0)} MiB RSS, ${(sup.anon + qemu.anon).toFixed(0)} MiB anon; the guest uses ${guestUsed} MiB`,
    );
    must('machine', 'delete', 'idle', '-f');

    must('machine', 'create', 'touch', '--cpus', '1', '--memory', '1536', '--storage', '1', '--overlay', '1');
    must('machine', 'start', '--name', 'touch', ...startFlags);
    sleep(IDLE_SETTLE_MS);
    const { qemu: pid } = pids('touch');
    const before = memOf(pid);
    must(
      'machine',
      'exec',
      '--name',
      'touch',
      '--',
      'sh',
      '-c',
      'mkdir -p /tmp/touch && mount -t tmpfs -o size=1100m tmpfs /tmp/touch && dd if=/dev/zero of=/tmp/touch/f bs=1M count=1024 2>/dev/null',
    );
    const peak = memOf(pid);
    must('machine', 'exec', '--name', 'touch', '--', 'sh', '-c', 'rm /tmp/touch/f && umount /tmp/touch');
    const after: string[] = [];
    for (let s = 2; s <= 12; s += 2) {
      sleep(2000);
      after.push(`${s}s ${memOf(pid).rss.toFixed(0)}`);
    }
    console.log(
      `1536 MiB machine, 1 GiB touched and freed: QEMU RSS before ${fmt(before)}, peak ${fmt(peak)}, then MiB: ${after.join(', ')}`,
    );
  } finally {
    for (const name of ['idle', 'touch']) spawnSync(cli, ['machine', 'delete', name, '-f'], { env });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function main(): void {
  for (const cli of clis) {
    if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: build first (npx nx build cli)`);
  }
  console.log(`${os.cpus().length} host cores; load ${os.loadavg()[0].toFixed(2)}`);
  for (const cli of clis) measure(cli);
}

main();
