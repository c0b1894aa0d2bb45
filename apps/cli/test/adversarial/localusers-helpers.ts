// Shared by the localusers tests: the other local user is uid 65534 (nobody), played through
// setpriv (util-linux). Making files of another user needs root; those tests are skipped otherwise.
import { spawnSync } from 'node:child_process';

export const ATTACKER = 65534;
const asRoot = process.getuid?.() === 0;

/** `it` as root; skipped (with a line saying why) otherwise. */
export function rootOnlyIt(file: string): jest.It {
  if (!asRoot) console.warn(`${file}: not root, so the tests that need files of another user are skipped`);
  return asRoot ? it : it.skip;
}

/** Runs a shell command as the other user. */
export function asAttacker(command: string): void {
  const r = spawnSync(
    'setpriv',
    [`--reuid=${ATTACKER}`, `--regid=${ATTACKER}`, '--clear-groups', 'sh', '-c', command],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`as uid ${ATTACKER}: ${command}: ${r.stderr}`);
}
