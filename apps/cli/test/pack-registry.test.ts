// `smolvm pack push` / `pack pull` against a real local registry (no VM): synthetic packs pushed
// through a counting proxy, pulled into clean homes; the default artifact registry from
// registries.toml; one-line errors that leave nothing behind.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { RegistryClient, RegistryConfig } from '@smolvm/oci';
import { PackFile, assemblePack, type SectionName } from '@smolvm/pack';
import { featureImage, pushBuiltImage } from '../../../tools/fixtures/images';
import { startProxy, type Proxy, type ProxyRequest } from '../../../tools/fixtures/proxy';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { smolvm, smolvmAsync } from './helpers';
import { testManifest } from '../../../libs/pack/test/helpers/manifest';

jest.setTimeout(120_000);

const base = testManifest();
const kernel = crypto.randomBytes(12_000);
const agent = crypto.randomBytes(30_000);

async function makePack(file: string, rootfs: Buffer): Promise<PackFile> {
  const content: Record<string, Buffer> = { kernel, agent, rootfs };
  await assemblePack({
    output: file,
    manifest: base,
    sections: (['kernel', 'agent', 'rootfs'] as SectionName[]).map((name) => ({
      name,
      open: () => Readable.from([content[name]]),
    })),
  });
  return PackFile.open(file);
}

function uploadsOf(requests: ProxyRequest[], digest: string): ProxyRequest[] {
  return requests.filter(
    (r) =>
      r.method === 'PUT' &&
      r.path.includes('/blobs/uploads/') &&
      r.path.includes(`digest=${encodeURIComponent(digest)}`),
  );
}

let registry: RegistryFixture;
let proxy: Proxy;
let dir: string;
let featureRef: string;
let one: PackFile;
let two: PackFile;

/** A fresh SMOLVM_HOME under this file's temp dir. */
function home(name: string): NodeJS.ProcessEnv {
  const h = path.join(dir, name);
  fs.mkdirSync(h, { mode: 0o700 });
  return { SMOLVM_HOME: h, HOME: h };
}

beforeAll(async () => {
  registry = await startRegistry();
  proxy = await startProxy({ target: registry.url });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cli-pack-registry-'));
  one = await makePack(path.join(dir, 'one.smolmachine'), crypto.randomBytes(50_000));
  two = await makePack(path.join(dir, 'two.smolmachine'), crypto.randomBytes(60_000));
  const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  try {
    featureRef = (await pushBuiltImage(client, `${registry.host}/smolvm-test/feature:latest`, featureImage()))
      .reference;
  } finally {
    await client.close();
  }
});
afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// Through the proxy (served by this process): the CLI runs asynchronously, or nothing would answer it.
it('pushes two packs (shared kernel and agent sent once) and pulls each into a clean home, byte for byte', async () => {
  const pusher = home('pusher');
  const first = await smolvmAsync(['pack', 'push', one.path, `${proxy.host}/packs/one:v1`], pusher);
  expect(first.stdout).toMatch(new RegExp(`^${proxy.host.replace(/\./g, '\\.')}/packs/one:v1@sha256:[a-f0-9]{64}\\n$`));
  expect(first.stderr).toMatch(
    /^pushed 127\.0\.0\.1:\d+\/packs\/one:v1 \(linux\/\w+\): [\d.]+ KB uploaded, 0 of 4 blobs already on the registry\n$/,
  );
  expect(first.status).toBe(0);

  const second = await smolvmAsync(['pack', 'push', two.path, `${proxy.host}/packs/two:v1`, '--json'], pusher);
  expect(second.status).toBe(0);
  const pushed = JSON.parse(second.stdout) as {
    blobs: Array<{ digest: string; outcome: string }>;
    packDigest: string;
    digest: string;
    reference: string;
  };
  expect(pushed.packDigest).toBe(two.digest);
  expect(pushed.reference).toBe(`${proxy.host}/packs/two:v1`);
  for (const name of ['kernel', 'agent'] as const) {
    const digest = `sha256:${one.section(name)?.sha256}`;
    expect(pushed.blobs.find((b) => b.digest === digest)?.outcome).toBe('mounted');
    expect(uploadsOf(proxy.requests, digest)).toHaveLength(1);
  }

  const clean = home('clean');
  const output = path.join(dir, 'pulled.smolmachine');
  const pulled = smolvm(['pack', 'pull', `${registry.host}/packs/one:v1`, '-o', output], clean);
  expect(pulled.stdout).toBe(`${output}\n`);
  expect(pulled.stderr).toMatch(/^pulled 127\.0\.0\.1:\d+\/packs\/one:v1 \(linux\/\w+, [\d.]+ KB downloaded\)\n$/);
  expect(pulled.status).toBe(0);
  expect(fs.readFileSync(output).equals(fs.readFileSync(one.path))).toBe(true);

  // By digest, into the cache; the second pull downloads nothing.
  const byDigest = smolvm(['pack', 'pull', `${registry.host}/packs/two@${pushed.digest}`, '--json'], clean);
  expect(byDigest.status).toBe(0);
  const cached = JSON.parse(byDigest.stdout) as { path: string; packDigest: string; downloadedBytes: number };
  expect(cached.path.startsWith(path.join(clean.SMOLVM_HOME as string, 'cache', 'pack', 'pulled') + path.sep)).toBe(
    true,
  );
  expect(cached.packDigest).toBe(two.digest);
  // kernel and agent were in this home's store already (pulled with pack one)
  expect(cached.downloadedBytes).toBeLessThan(fs.statSync(two.path).size - kernel.length - agent.length + 4096);
  const again = JSON.parse(
    smolvm(['pack', 'pull', `${registry.host}/packs/two:v1`, '--json'], clean).stdout,
  ) as typeof cached;
  expect(again).toMatchObject({ path: cached.path, downloadedBytes: 0 });
});

it('sends names without a registry to [artifacts] registry from registries.toml', () => {
  const env = home('default-registry');
  const config = path.join(env.SMOLVM_HOME as string, 'config');
  fs.mkdirSync(config, { mode: 0o700 });
  fs.writeFileSync(path.join(config, 'registries.toml'), `[artifacts]\nregistry = "${registry.host}"\n`, {
    mode: 0o600,
  });
  const r = smolvm(['pack', 'push', one.path, 'team/app', '--json'], env);
  expect(r.stderr).toBe('');
  expect((JSON.parse(r.stdout) as { reference: string }).reference).toBe(`${registry.host}/team/app:latest`);
  const output = path.join(dir, 'default.smolmachine');
  expect(smolvm(['pack', 'pull', 'team/app', '-o', output], env).status).toBe(0);
  expect(PackFile.open(output).digest).toBe(one.digest);
});

it('refuses what is not a pack in one line, writing nothing', () => {
  const env = home('errors');
  const output = path.join(dir, 'not-a-pack.smolmachine');
  const image = smolvm(['pack', 'pull', featureRef, '-o', output], env);
  expect(image.stderr).toBe(`error: ${featureRef} is a container image, not a smolvm pack; check the reference\n`);
  expect(image.status).not.toBe(0);
  expect(fs.existsSync(output)).toBe(false);

  const missing = smolvm(['pack', 'pull', `${registry.host}/packs/none:v1`, '-o', output], env);
  expect(missing.stderr).toMatch(/^error: 127\.0\.0\.1:\d+\/packs\/none:v1 not found; /);
  expect(fs.existsSync(output)).toBe(false);

  const notPack = path.join(dir, 'garbage.smolmachine');
  fs.writeFileSync(notPack, crypto.randomBytes(1000));
  const bad = smolvm(['pack', 'push', notPack, `${registry.host}/packs/garbage:v1`], env);
  expect(bad.stderr).toMatch(new RegExp(`^error: ${notPack.replace(/\./g, '\\.')} is not a usable \\.smolmachine: `));
  expect(bad.stderr.split('\n')).toHaveLength(2);
  expect(bad.status).not.toBe(0);

  const digestRef = smolvm(['pack', 'push', one.path, `${registry.host}/packs/x@sha256:${'a'.repeat(64)}`], env);
  expect(digestRef.stderr).toMatch(/a push needs a tag, not a digest/);
  expect(digestRef.status).toBe(2);
  // --from: one source only, and a value that is neither a file nor a reference, before any VM.
  const both = smolvm(['pack', 'run', '--sidecar', one.path, '--from', 'team/app'], env);
  expect(both.stderr).toBe('error: --sidecar and --from both name the pack to run; give one of them\n');
  expect(both.status).toBe(2);
  const neither = smolvm(['machine', 'create', 'x', '--from', 'Not:A:Ref'], env);
  expect(neither.stderr).toBe(
    'error: Not:A:Ref is neither a file nor an artifact reference; give the path of a .smolmachine, or a reference such as registry.example.com/team/app:v1\n',
  );
  expect(neither.status).toBe(2);
  expect(smolvm(['machine', 'ls', '--json'], env).stdout).toBe('[]\n');
});
