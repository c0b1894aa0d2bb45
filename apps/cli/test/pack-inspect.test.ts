// `smolvm pack inspect` of a version 4 pack (no VM): the runtime (size, sha256) and where a run
// would read it from, in text and JSON; a pack whose runtime is nowhere is still shown, with why.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { assemblePack, RUNTIME_MEDIA_TYPE, type SectionName } from '@smolvm/pack';
import { ok, smolvm } from './helpers';
import { testManifest } from '../../../libs/pack/test/helpers/manifest';

jest.setTimeout(60_000);

const base = testManifest();

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cli-pack-inspect-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

it('shows the runtime and where it is read from, or that it is nowhere and what to do', async () => {
  const stub = crypto.randomBytes(2 * 4096 + 5);
  const size = 2 * 4096;
  const sha256 = crypto.createHash('sha256').update(stub.subarray(0, size)).digest('hex');
  const app = path.join(dir, 'app');
  fs.writeFileSync(app, stub, { mode: 0o755 });
  const content: Record<string, Buffer> = { kernel: crypto.randomBytes(5000), agent: crypto.randomBytes(9000) };
  await assemblePack({
    output: `${app}.smolmachine`,
    manifest: base,
    sections: (['kernel', 'agent'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
    })),
    runtime: { size, sha256 },
  });
  const home = path.join(dir, 'home');
  fs.mkdirSync(home, { mode: 0o700 });
  const env = { SMOLVM_HOME: home, HOME: home };

  const json = JSON.parse(ok(smolvm(['pack', 'inspect', `${app}.smolmachine`, '--json'], env))) as Record<
    string,
    unknown
  >;
  expect(json).toMatchObject({
    version: 4,
    runtime: { media_type: RUNTIME_MEDIA_TYPE, size, sha256 },
    runtime_source: { path: fs.realpathSync(app), offset: 0, size },
  });
  expect(json.runtime_error).toBeUndefined();
  const text = ok(smolvm(['pack', 'inspect', `${app}.smolmachine`], env));
  expect(text).toMatch(/^runtime: +[\d.]+ MiB of the packed executable/m);
  expect(text).toContain(`sha256 ${sha256.slice(0, 16)}`);
  expect(text).toContain(`read from ${fs.realpathSync(app)} (its first ${size} bytes, in place)`);

  // Without the executable the pack is still shown, with why it cannot run and what to do.
  fs.rmSync(app);
  const gone = smolvm(['pack', 'inspect', `${app}.smolmachine`, '--json'], env);
  expect(gone.status).toBe(0);
  const missing = JSON.parse(gone.stdout) as Record<string, unknown>;
  expect(missing.runtime_source).toBeNull();
  expect(missing.runtime_error).toContain(
    `its guest runs on the Node of the executable it was packed with (runtime sha256 ${sha256.slice(0, 12)}`,
  );
  expect(missing.runtime_error).toContain(`${app} (missing)`);
  expect(missing.runtime_error).toContain(`keep the executable it was packed with beside the .smolmachine (as ${app})`);
  expect(ok(smolvm(['pack', 'inspect', `${app}.smolmachine`], env))).toContain('               not found: ');
});
