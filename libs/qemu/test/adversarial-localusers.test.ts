// Issue 14, item 7: an early-start recipe names a program and its arguments, run before the CLI
// has loaded. parseQemuRestoreRecipe is the second wall behind the loader's owner checks: only
// the setpriv and QEMU smolvm itself resolves, only the QEMU options smolvm writes, no `..`.
// (The CLI's test/adversarial/localusers-prestart.test.ts plants recipes end to end.)
import type { VmSpec } from '@smolvm/driver-api';
import { findExecutable, pdeathsigCommand } from '@smolvm/driver-kit';
import { buildQemuArgv, type QemuTarget } from '../src';
import { runFiles } from '../src/launch';
import { parseQemuRestoreRecipe, type QemuRestoreRecipe } from '../src/prestart';

const RUN = '/run/smolvm/vm-abc';
const target: QemuTarget = {
  binary: 'qemu-system-x86_64',
  machine: 'microvm',
  machineOptions: { acpi: 'off' },
  accel: 'tcg',
  cpu: 'max',
  consoleDevice: 'ttyS0',
  kernelArgs: ['quiet'],
};
const setpriv = findExecutable('setpriv');
const qemu = findExecutable('qemu-system-x86_64');
const haveBoth = setpriv !== undefined && qemu !== undefined;
if (!haveBoth) console.warn('adversarial-localusers: setpriv or qemu-system-x86_64 is not on PATH; run tools/setup');
const itWithBoth = haveBoth ? it : it.skip;

/** A recipe exactly as snapshot.ts's recipeFor writes it, for a VM with every kind of device. */
function realRecipe(): QemuRestoreRecipe {
  const spec: VmSpec = {
    kernel: '/cache/kernel/vmlinux',
    initrd: '/cache/agent/initrd',
    cpus: 2,
    memoryMiB: 512,
    runDir: `${RUN}/driver`,
    consoleLog: `${RUN}/console.log`,
    agent: { socketPath: `${RUN}/agent.sock` },
    disks: [
      { id: 'root', path: '/cache/agent/root.erofs', readOnly: true },
      { id: 'image', path: '/cache/vmsnap/k/image', readOnly: true },
    ],
    shares: [{ tag: 'vol0', hostPath: '/home/me/project', readOnly: false }],
    network: { socketPath: `${RUN}/net.sock`, mac: '52:54:00:12:34:56' },
  } as VmSpec;
  const memoryFile = '/cache/vmsnap/k/memory';
  const files = runFiles(spec.runDir);
  const command = pdeathsigCommand(
    qemu as string,
    buildQemuArgv(spec, target, files, { memoryFile, share: false, incoming: true }),
  );
  return {
    ...command,
    runDir: RUN,
    driverDir: spec.runDir,
    qmpSocket: files.qmpSocket,
    consoleLog: spec.consoleLog,
    stateFile: '/cache/vmsnap/k/state',
    memoryFile,
    memoryBytes: 512 * 1024 * 1024,
  };
}

const parse = (r: unknown) => parseQemuRestoreRecipe(JSON.parse(JSON.stringify(r)));

describe('what a recipe may start', () => {
  itWithBoth('a recipe as smolvm writes it, with disks, shares and a network, is accepted', () => {
    const r = realRecipe();
    expect(parse(r)).toEqual(r);
    // The seccomp filter may be turned on (it only takes from QEMU).
    const sandboxed = { ...r, args: [...r.args, '-sandbox', 'on,obsolete=deny,spawn=deny'] };
    expect(parse(sandboxed)).toEqual(sandboxed);
  });

  itWithBoth('only the setpriv smolvm resolves: not another program, nor another file named setpriv', () => {
    for (const file of ['/tmp/evil/setpriv', '/bin/sh', qemu as string, `${setpriv}/../setpriv`]) {
      expect([file, parse({ ...realRecipe(), file })]).toEqual([file, undefined]);
    }
  });

  itWithBoth('setpriv may only exec the QEMU smolvm resolves, with the parent-death signal', () => {
    const r = realRecipe();
    const qemuArgs = r.args.slice(4);
    for (const args of [
      ['--pdeathsig', 'KILL', '--', '/tmp/evil/qemu-system-x86_64', ...qemuArgs],
      ['--pdeathsig', 'KILL', '--', '/bin/sh', '-c', 'touch /tmp/pwned'],
      ['--reuid=0', '--pdeathsig', 'KILL', '--', qemu as string, ...qemuArgs],
      ['--pdeathsig', 'KILL', qemu as string, ...qemuArgs],
    ]) {
      expect([args.slice(0, 5), parse({ ...r, args })]).toEqual([args.slice(0, 5), undefined]);
    }
  });

  itWithBoth('no QEMU option that runs a program or that smolvm does not write', () => {
    const r = realRecipe();
    for (const extra of [
      ['-netdev', 'tap,id=n1,script=/tmp/evil.sh'],
      ['-netdev', 'user,id=n1,smb=/'],
      ['-incoming', 'exec:sh -c "touch /tmp/pwned"'],
      ['-chardev', 'pipe,id=p,path=/tmp/p'],
      ['-object', 'secret,id=s,file=/root/.ssh/id_ed25519'],
      ['-run-with', 'user=nobody'],
      ['-plugin', '/tmp/evil.so'],
      ['-drive', 'file=/etc/shadow'],
      ['-blockdev'],
      ['-sandbox', 'off'],
    ]) {
      expect([extra, parse({ ...r, args: [...r.args, ...extra] })]).toEqual([extra, undefined]);
    }
  });

  itWithBoth('no `..`: in a per-run path (it passed the prefix check), a snapshot path or an argument', () => {
    const r = realRecipe();
    for (const bad of [
      { consoleLog: `${RUN}/../../../home/me/.bashrc` },
      { qmpSocket: `${RUN}/driver/../../x.sock` },
      { driverDir: `${RUN}/..` },
      { stateFile: '/cache/vmsnap/k/../../../etc/passwd' },
      { args: [...r.args, '-fsdev', 'local,id=fs9,path=/home/me/project/../../..,security_model=none'] },
      { consoleLog: RUN },
    ]) {
      expect([bad, parse({ ...r, ...bad })]).toEqual([bad, undefined]);
    }
  });
});
