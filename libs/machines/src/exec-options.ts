// What `exec` in a machine runs with, for the CLI's fast exec path and the API alike: light
// imports only (it is part of the `@smolvm/machines/connect` entry).
import { mergeEnv, parseEnvEntry, type EnvVar } from '@smolvm/config/env';
import type { ExecOptions } from '@smolvm/agent-protocol';
import type { MachineRecord } from '@smolvm/machine-store';

/**
 * The machine's env with `env` on top (later wins), the given working directory or the
 * machine's, and the machine's user.
 */
export function machineExecOptions(
  record: MachineRecord,
  argv: string[],
  extra: { env?: readonly EnvVar[]; workdir?: string } = {},
): ExecOptions {
  const env = mergeEnv(
    record.env.map((e) => parseEnvEntry(e)),
    extra.env ?? [],
  );
  const cwd = extra.workdir ?? record.workdir;
  return {
    argv,
    env: Object.fromEntries(env.map((v) => [v.name, v.value])),
    ...(cwd ? { cwd } : {}),
    ...(record.user ? { user: record.user } : {}),
  };
}
