// What the packed executable's early-start recipes are keyed by (src/early-run.ts): its own file
// and its payload as the process found them at its start, so a pack written since finds no recipe.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stubRecipeKey } from '../src/early-run';

const KEY = Symbol.for('smolvm.stub-recipe-key');
const fresh = (exe: string) => {
  delete (globalThis as Record<symbol, unknown>)[KEY];
  return stubRecipeKey(exe);
};

let dir: string;
let exe: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stub-early-'));
  exe = path.join(dir, 'my-app');
  fs.writeFileSync(exe, 'stub');
  fs.writeFileSync(`${exe}.smolmachine`, 'payload');
});
afterEach(() => {
  delete (globalThis as Record<symbol, unknown>)[KEY];
  fs.rmSync(dir, { recursive: true, force: true });
});

it('is computed once per process: a later change does not move it', () => {
  const key = fresh(exe);
  expect(key).toContain(`${exe}.smolmachine`);
  fs.writeFileSync(`${exe}.smolmachine`, 'other');
  expect(stubRecipeKey(exe)).toBe(key);
});

it('a payload written since (same bytes: only its times differ) or replaced, or another executable, keys otherwise', async () => {
  const key = fresh(exe);
  await new Promise((r) => setTimeout(r, 20));
  fs.writeFileSync(`${exe}.smolmachine`, 'payload');
  const rewritten = fresh(exe);
  expect(rewritten).not.toBe(key);
  fs.renameSync(`${exe}.smolmachine`, path.join(dir, 'moved'));
  fs.copyFileSync(path.join(dir, 'moved'), `${exe}.smolmachine`);
  expect(fresh(exe)).not.toBe(rewritten);
  await new Promise((r) => setTimeout(r, 20));
  fs.writeFileSync(exe, 'stub');
  expect(fresh(exe)).not.toBe(key);
});

it('without a sidecar the executable is its own payload; unreadable: no key', () => {
  fs.rmSync(`${exe}.smolmachine`);
  expect(fresh(exe)).toMatch(new RegExp(`\\|${exe}\\|[^|]+\\|${exe}\\|`));
  expect(fresh(path.join(dir, 'missing'))).toBeUndefined();
});
