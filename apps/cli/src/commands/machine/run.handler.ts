// `smolvm machine run`: merge flags + Smolfile + image config, boot a VM, run the command with
// the user's stdio, and pass its exit code through. The VM and its files are gone afterwards.
import { UsageError, smolvmDirs } from '@smolvm/common';
import { applyImageConfig, loadSmolfile, mergeRunOptions } from '@smolvm/config';
import { formatDenial } from '@smolvm/netpolicy';
import { runInitCommands, startVm, workloadArgv, type Vm } from '@smolvm/runtime';
import type { ExecSession } from '@smolvm/agent-protocol';
import type { ImageConfig } from '@smolvm/oci';
import { agentBundlePath, guestAssets } from '../../runtime-assets';
import { keepRecipe, takePrestarted } from '../../prestart';
import { pullWithProgress } from '../image/pull-progress';
import { prepareBaseImage } from './base-image';
import { runSession, ttyOptions } from '../../output/session';
import { writeRunTimings } from '../../output/timings';
import type { RunArgs } from './run';
import { networkFlags, vmNetwork } from './workload-options';
import { execOrExitCode } from './exec.handler';

export async function runRun(args: RunArgs): Promise<number> {
  if (args.name !== undefined) {
    throw new UsageError('--name names the machine of machine run -d, and this run is not detached', {
      remedy: 'add -d to leave the VM running under that name, or drop --name',
    });
  }
  if (args.tty && args.interactive && !process.stdin.isTTY) {
    throw new UsageError('-it needs a terminal on stdin, and stdin is not one', {
      remedy: 'drop -t to pipe data in with -i, or run from a terminal',
    });
  }
  const smolfile = args.smolfile ? loadSmolfile(args.smolfile) : undefined;
  const merged = mergeRunOptions(
    {
      image: args.image,
      command: (args['--'] ?? []).map(String),
      env: args.env,
      volumes: args.volume,
      init: args.init,
      cpus: args.cpus,
      memory: args.memory,
      workdir: args.workdir,
      ...networkFlags(args),
    },
    smolfile,
  );

  // Without an image, the base image bare VMs run on: known before any run, so its root is
  // built in the boot snapshot (imageInSnapshot) and a restore only configures the run.
  const prepared = merged.image
    ? await pullWithProgress(merged.image, { quiet: args.quiet, pull: 'missing' })
    : await prepareBaseImage(args.quiet);
  const imageErofs = prepared.erofsPath;
  const imageConfig: ImageConfig = prepared.config;
  const config = applyImageConfig(merged, imageConfig);
  // The base's own command (Debian's /bin/bash) comes with its config; a base without one gets the shell.
  const argv = workloadArgv(config.argv, merged.image !== undefined);
  if (argv.length === 0) {
    throw new UsageError(`image ${args.image ?? merged.image} defines no command`, {
      remedy: 'name one after --, e.g. smolvm machine run --image IMAGE -- /bin/sh',
    });
  }

  const early = takePrestarted();
  const vmStart = performance.now();
  let commandDone: number | undefined;
  const vm: Vm = await startVm({
    cpus: config.cpus,
    memoryMiB: config.memoryMib,
    imageErofs,
    ...(merged.image ? {} : { imageInSnapshot: prepared.manifestDigest }),
    volumes: config.volumes,
    // Denied connections are the policy working: silent unless --debug, as are the gateway's
    // warnings (an allowed host that did not resolve, or resolved to addresses it does not open).
    network: vmNetwork(
      merged,
      args.debug ? (d) => process.stderr.write(`smolvm: ${formatDenial(d)}\n`) : undefined,
      args.debug ? (message) => process.stderr.write(`smolvm: network: ${message}\n`) : undefined,
    ),
    sshAgent: merged.sshAgent,
    ...(args.debug
      ? {
          onSshAgentRefused: (request: string) =>
            process.stderr.write(`smolvm: ssh-agent: refused ${request} from the guest\n`),
        }
      : {}),
    agentBundle: agentBundlePath(),
    guestAssets: guestAssets(),
    bootSnapshot: !args.cold,
    ...(args.debug ? { onNote: (message: string) => process.stderr.write(`smolvm: note: ${message}\n`) } : {}),
    ...(args.driver ? { driver: { name: args.driver, source: '--driver' } } : {}),
    ...(early ? { prestarted: early } : {}),
  });
  // The next identical invocation starts this restore before it has even loaded (prestart.ts).
  // __filename is the CLI bundle the loader keyed the recipe by (the executable, when smolvm is one file).
  if (vm.restoreRecipe) keepRecipe(process.argv.slice(2), smolvmDirs(process.env).cache, __filename, vm.restoreRecipe);
  try {
    const env = Object.fromEntries(config.env.map((v) => [v.name, v.value]));
    await runInit(vm, config.init, {
      env,
      ...(config.workdir ? { cwd: config.workdir } : {}),
      ...(config.user ? { user: config.user } : {}),
    });
    const session = await execOrExitCode(vm, {
      argv,
      env,
      cwd: config.workdir,
      user: config.user,
      stdin: args.interactive,
      ...ttyOptions(args.tty),
    });
    if (typeof session === 'number') return session;
    const code = await runSession(session, {
      interactive: args.interactive,
      tty: args.tty,
      onTerminate: () => vm.kill(),
    });
    commandDone = performance.now();
    return code;
  } finally {
    await vm.dispose();
    writeRunTimings(vm, vmStart, commandDone);
  }
}

/** Init output goes to the terminal; Ctrl-C, SIGTERM and SIGHUP go to the init command, as they do to the command. */
async function runInit(
  vm: Vm,
  commands: string[],
  ctx: { env: Record<string, string>; cwd?: string; user?: string },
): Promise<void> {
  let current: ExecSession | undefined;
  const forward = (signal: NodeJS.Signals) => void current?.signal(signal).catch(() => undefined);
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, forward);
  try {
    await runInitCommands(vm, commands, {
      ...ctx,
      onSession: (session) => (current = session),
      onOutput: (data, stream) => void (stream === 'stdout' ? process.stdout : process.stderr).write(data),
      remedy: 'fix the command in [dev] init or --init',
    });
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}
