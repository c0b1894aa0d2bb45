// `smolvm serve` as a command, without VMs: its code is a bundle of its own that no other
// command loads, and `serve openapi` prints the same document the server serves.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { CLI, smolvm } from './helpers';

let home: string;
let env: NodeJS.ProcessEnv;
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-serve-cli-'));
  env = { SMOLVM_HOME: home, NODE_OPTIONS: '' };
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

/** The files of the CLI's dist/ a run required. */
function bundlesLoadedBy(args: string[]): string[] {
  const out = path.join(home, 'required.json');
  const preload = path.join(home, 'preload.js');
  fs.writeFileSync(
    preload,
    `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`,
  );
  const r = smolvm(args, { ...env, NODE_OPTIONS: `--require ${preload}` });
  expect([args, r.status]).toEqual([args, 0]);
  const dist = path.dirname(CLI);
  return (JSON.parse(fs.readFileSync(out, 'utf8')) as string[])
    .filter((f) => path.dirname(f) === dist)
    .map((f) => path.basename(f));
}

it('keeps fastify out of the CLI bundle: only serve commands load dist/smolvm-serve.js', () => {
  expect(fs.readFileSync(path.join(path.dirname(CLI), 'smolvm-main.js'), 'utf8')).not.toMatch(/fastify/i);
  for (const args of [['--help'], ['machine', 'ls'], ['serve', '--help'], ['serve', 'start', '--help']]) {
    expect([args, bundlesLoadedBy(args)]).toEqual([args, expect.not.arrayContaining(['smolvm-serve.js'])]);
  }
  expect(bundlesLoadedBy(['serve', 'openapi'])).toContain('smolvm-serve.js');
});

it('serve openapi prints a valid OpenAPI 3.1 document, and -o writes the same one', async () => {
  const printed = smolvm(['serve', 'openapi'], env);
  expect([printed.status, printed.stderr]).toEqual([0, '']);
  const doc = JSON.parse(printed.stdout) as { openapi: string; paths: Record<string, unknown> };
  expect(doc.openapi).toBe('3.1.0');
  await SwaggerParser.validate(structuredClone(doc) as never);
  const file = path.join(home, 'api.json');
  expect(smolvm(['serve', 'openapi', '-o', file], env).status).toBe(0);
  expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(doc);
});

it('refuses a non-loopback listen without a token, and a bad token file, with one line and exit code 2', () => {
  const open = smolvm(['serve', 'start', '--listen', '0.0.0.0:0'], env);
  expect(open.status).toBe(2);
  expect(open.stderr).toBe(
    'error: --listen 0.0.0.0:0 would let anyone who can reach this host run commands in your machines; give --token-file FILE (a secret of 16+ characters, mode 0600) to require a bearer token, or listen on 127.0.0.1\n',
  );
  const token = path.join(home, 'token');
  fs.writeFileSync(token, 'a-long-enough-secret-token\n', { mode: 0o644 });
  fs.chmodSync(token, 0o644);
  const loose = smolvm(['serve', 'start', '--listen', '0.0.0.0:0', '--token-file', token], env);
  expect([loose.status, loose.stderr]).toEqual([
    2,
    `error: --token-file ${token} can be read by other users (mode 644); chmod 600 ${token}\n`,
  ]);
  const bad = smolvm(['serve', 'start', '--listen', 'localhost'], env);
  expect([bad.status, bad.stderr.split(';')[0]]).toEqual([2, 'error: --listen localhost is not ADDR:PORT']);
});
