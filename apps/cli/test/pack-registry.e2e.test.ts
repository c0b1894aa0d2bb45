// `pack push` / `pack pull` / `--from REFERENCE` end to end: packs pushed to the local registry
// through a counting proxy, pulled into clean homes and run in real VMs. A second pack shares
// the kernel and agent blobs, and the registry never receives them twice.
import fs from 'node:fs';
import path from 'node:path';
import { featureImage } from '../../../tools/fixtures/images';
import { startProxy, type Proxy, type ProxyRequest } from '../../../tools/fixtures/proxy';
import { PackFile } from '@smolvm/pack';
import { e2eSetup, smolvm, smolvmAsync, type CliResult, type E2eSetup } from './helpers';

jest.setTimeout(600_000);

let setup: E2eSetup;
let env: NodeJS.ProcessEnv;
let proxy: Proxy;
let registryHost: string;
let work: string;
let featureRef: string;

/** A clean SMOLVM_HOME (inside this file's home, removed with it). */
function cleanHome(name: string): NodeJS.ProcessEnv {
  const home = path.join(setup.home, name);
  fs.mkdirSync(home, { mode: 0o700 });
  return { ...env, SMOLVM_HOME: home };
}

function cli(args: string[], extra: NodeJS.ProcessEnv = env, timeoutMs = 300_000): CliResult {
  return smolvm(args, extra, undefined, timeoutMs);
}

/** Requests that carried a blob's bytes (a monolithic PUT with its digest, or a PATCH of its upload). */
function uploadsOf(requests: ProxyRequest[], digest: string): ProxyRequest[] {
  return requests.filter(
    (r) =>
      r.method === 'PUT' &&
      r.path.includes('/blobs/uploads/') &&
      r.path.includes(`digest=${encodeURIComponent(digest)}`),
  );
}

beforeAll(async () => {
  setup = await e2eSetup('smolvm-pack-registry-e2e-', { 'smolvm-test/feature:latest': featureImage() });
  env = setup.env;
  featureRef = setup.refs['smolvm-test/feature:latest'];
  registryHost = featureRef.split('/')[0];
  proxy = await startProxy({ target: `http://${registryHost}` });
  work = path.join(setup.home, 'work');
  fs.mkdirSync(work);
  const one = cli([
    'pack',
    'create',
    '--image',
    featureRef,
    '-o',
    path.join(work, 'one'),
    '--cpus',
    '1',
    '--memory',
    '256',
  ]);
  expect(one.stderr).not.toMatch(/error/i);
  expect(one.status).toBe(0);
  const two = cli(['pack', 'create', '-o', path.join(work, 'two'), '--cpus', '1', '--memory', '256']);
  expect(two.status).toBe(0);
});

afterAll(async () => {
  await proxy?.close();
  await setup?.close();
});

afterEach(() => {
  expect(setup.qemus()).toEqual([]);
});

// Pushes go through the proxy, which this process serves: the CLI runs asynchronously for them.
it('pushes two packs; the kernel and agent reach the registry once; a clean home pulls and runs each', async () => {
  const one = PackFile.open(path.join(work, 'one.smolmachine'));
  const two = PackFile.open(path.join(work, 'two.smolmachine'));
  const shared = ['kernel', 'agent'] as const;
  for (const name of shared) expect(two.section(name)?.sha256).toBe(one.section(name)?.sha256);

  const first = await smolvmAsync(['pack', 'push', one.path, `${proxy.host}/packs/one:v1`], env);
  expect(first.stderr).toMatch(
    /^pushed .*packs\/one:v1 \(linux\/\w+\): .* uploaded, 0 of \d+ blobs already on the registry\n$/,
  );
  expect(first.stdout).toMatch(new RegExp(`^${proxy.host.replace(/\./g, '\\.')}/packs/one:v1@sha256:[a-f0-9]{64}\\n$`));
  expect(first.status).toBe(0);

  const second = await smolvmAsync(['pack', 'push', two.path, `${proxy.host}/packs/two:v1`, '--json'], env);
  expect(second.status).toBe(0);
  const pushed = JSON.parse(second.stdout) as {
    blobs: Array<{ digest: string; outcome: string }>;
    packDigest: string;
    platform: string;
  };
  expect(pushed.packDigest).toBe(two.digest);
  for (const name of shared) {
    const digest = `sha256:${one.section(name)?.sha256}`;
    expect(pushed.blobs.find((b) => b.digest === digest)?.outcome).toBe('mounted');
    expect(uploadsOf(proxy.requests, digest)).toHaveLength(1);
  }
  // The same pack to the first repository: everything is there already.
  const again = await smolvmAsync(['pack', 'push', two.path, `${proxy.host}/packs/one:v2`, '--json'], env);
  expect(again.status).toBe(0);
  for (const name of shared) {
    const digest = `sha256:${one.section(name)?.sha256}`;
    expect((JSON.parse(again.stdout) as typeof pushed).blobs.find((b) => b.digest === digest)?.outcome).toBe('existed');
    expect(uploadsOf(proxy.requests, digest)).toHaveLength(1);
  }
  expect(proxy.requests.filter((r) => r.method === 'PATCH')).toHaveLength(0);

  // A clean home pulls pack one into a file, then runs it.
  const homeA = cleanHome('clean-a');
  const output = path.join(work, 'pulled-one.smolmachine');
  const pulled = cli(['pack', 'pull', `${registryHost}/packs/one:v1`, '-o', output], homeA);
  expect(pulled.stdout).toBe(`${output}\n`);
  expect(pulled.status).toBe(0);
  expect(PackFile.open(output).digest).toBe(one.digest);
  // The feature image's entrypoint script and GREETING: its rootfs and workload came through.
  const ran = cli(['pack', 'run', '--sidecar', output, '--', 'from-the-registry'], homeA);
  expect(ran.stderr).toBe('');
  expect(ran.stdout).toBe('hello, from-the-registry\n');
  expect(ran.status).toBe(0);

  // Another clean home runs pack two straight from the registry (pulled into its cache by digest).
  const homeB = cleanHome('clean-b');
  const direct = cli(
    ['pack', 'run', '--from', `${registryHost}/packs/two:v1`, '--', 'sh', '-c', 'echo from-two; exit 7'],
    homeB,
  );
  expect(direct.stdout).toBe('from-two\n');
  expect(direct.status).toBe(7);
  const cached = fs.readdirSync(path.join(homeB.SMOLVM_HOME as string, 'cache', 'pack', 'pulled'));
  expect(cached).toEqual([expect.stringMatching(/^[a-f0-9]{64}\.smolmachine$/)]);

  // machine create --from a reference: the cached pack is reused (nothing downloaded again).
  const created = cli(['machine', 'create', 'from-registry', '--from', `${registryHost}/packs/two:v1`], homeB);
  expect(created.status).toBe(0);
  expect(fs.readdirSync(path.join(homeB.SMOLVM_HOME as string, 'cache', 'pack', 'pulled'))).toEqual(cached);
  const listed = JSON.parse(cli(['machine', 'ls', '--json'], homeB).stdout) as Array<{ name: string }>;
  expect(listed.map((m) => m.name)).toContain('from-registry');
  expect(cli(['machine', 'delete', 'from-registry'], homeB).status).toBe(0);
});

it('refuses to pull a container image as a pack, in one line, writing nothing', () => {
  const home = cleanHome('clean-c');
  const output = path.join(work, 'not-a-pack.smolmachine');
  const r = cli(['pack', 'pull', featureRef, '-o', output], home);
  expect(r.stderr).toBe(`error: ${featureRef} is a container image, not a smolvm pack; check the reference\n`);
  expect(r.status).not.toBe(0);
  expect(fs.existsSync(output)).toBe(false);
});
