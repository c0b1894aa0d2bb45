// Early restores for the packed executable's `run`, as `machine run` has them (apps/cli/src/
// prestart.ts, started from src/sea.ts): the executable's loader starts the restore the last
// identical run left a recipe of, before the stub bundle loads. Its recipes are keyed by the
// invocation and by the identity (device, inode, size, times) of this executable and its payload
// as this process found them when it started, in place of the CLI's bundle: a pack written since
// (any write changes its ctime) finds no recipe, so no guest runs on bytes this run has not
// verified (PackFile.verify).
import fs from 'node:fs';

const KEY = Symbol.for('smolvm.stub-recipe-key');

// What @smolvm/pack's verified.ts calls a file's identity, without loading that library into the
// executable's loader (compiled on every start, uncached).
function identity(file: string): string {
  const st = fs.statSync(file, { bigint: true });
  return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs].join(':');
}

/**
 * What this process's run recipes are keyed by: computed once, at its start (the loader and the
 * stub bundle share it through globalThis), or undefined when either file cannot be read.
 */
export function stubRecipeKey(exe = process.execPath): string | undefined {
  const g = globalThis as Record<symbol, string | null | undefined>;
  if (g[KEY] === undefined) {
    try {
      // The payload as findPayload takes it: the sidecar when there is one, else the executable.
      const sidecar = `${exe}.smolmachine`;
      const payload = fs.existsSync(sidecar) ? sidecar : exe;
      g[KEY] = `smolvm-stub|${exe}|${identity(exe)}|${payload}|${identity(payload)}`;
    } catch {
      g[KEY] = null;
    }
  }
  return g[KEY] ?? undefined;
}
