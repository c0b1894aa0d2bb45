import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { assemblePack } from '@smolvm/pack';
import { findPayload } from '../src/payload';
import { testManifest } from '../../../libs/pack/test/helpers/manifest';

const manifest = testManifest({
  platform: 'linux/amd64',
  host_platform: 'linux/amd64',
  cmd: [],
  cpus: 4,
  memory_mib: 8192,
});

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stub-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const sections = () =>
  (['kernel', 'agent'] as const).map((name) => ({ name, open: () => Readable.from([Buffer.from(`${name} bytes`)]) }));

test('the payload is the sidecar beside the executable, else the one appended to it', async () => {
  const exe = path.join(dir, 'my-app');
  fs.writeFileSync(exe, '#!/usr/bin/env node\n');
  await expect(async () => findPayload(exe)).rejects.toThrow(/no payload for .*my-app: neither .*my-app.smolmachine/);

  await assemblePack({ output: `${exe}.smolmachine`, manifest, sections: sections() });
  expect(findPayload(exe).path).toBe(`${exe}.smolmachine`);

  const single = path.join(dir, 'one');
  await assemblePack({ output: single, manifest, sections: sections(), prefix: Buffer.from('#!/bin/sh\n') });
  const pack = findPayload(single);
  expect(pack.path).toBe(single);
  expect(pack.payloadStart).toBe(4096);
});

test('a payload that is not a pack is refused with one line naming it', async () => {
  const exe = path.join(dir, 'my-app');
  fs.writeFileSync(
    `${exe}.smolmachine`,
    'not a pack at all, but long enough to hold a footer of eighty bytes......................',
  );
  expect(() => findPayload(exe)).toThrow(
    /my-app.smolmachine is not a usable .smolmachine: it does not end with the SMOLMACH magic/,
  );
});
