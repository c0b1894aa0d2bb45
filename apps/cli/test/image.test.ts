// `smolvm image ...` and `smolvm config registries edit` against real local registries.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, RegistryConfig } from '@smolvm/oci';
import { DEFAULT_USERS, startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { pushTestImages, type TestImages } from '../../../tools/fixtures/images';
import { spawnSync } from 'node:child_process';
import { CLI, smolvm } from './helpers';

jest.setTimeout(60_000);

let open: RegistryFixture;
let basic: RegistryFixture;
let images: TestImages;
let privateRef: string;
let home: string;
let env: NodeJS.ProcessEnv;

async function push(
  registry: RegistryFixture,
  settings: Record<string, { username: string; password: string }> = {},
): Promise<TestImages> {
  const client = new RegistryClient({ config: RegistryConfig.fromSettings(settings) });
  try {
    return await pushTestImages(client, registry.host);
  } finally {
    await client.close();
  }
}

beforeAll(async () => {
  [open, basic] = await Promise.all([startRegistry({ auth: 'none' }), startRegistry({ auth: 'basic' })]);
  images = await push(open);
  const [user, password] = Object.entries(DEFAULT_USERS)[0];
  privateRef = (await push(basic, { [basic.host]: { username: user, password } })).feature.reference;
});
afterAll(async () => {
  await Promise.all([open?.stop(), basic?.stop()]);
});
beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-cli-image-'));
  env = { SMOLVM_HOME: home, HOME: home };
});
afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

function writeEditor(content: string): string {
  const script = path.join(home, 'editor.sh');
  fs.writeFileSync(script, `#!/bin/sh\ncat > "$1" <<'EOF'\n${content}\nEOF\n`, { mode: 0o755 });
  return script;
}

describe('smolvm image', () => {
  it('pull prints ref@digest on stdout, no progress bar when piped, and prepares the erofs image', () => {
    const r = smolvm(['image', 'pull', '--image', images.feature.reference], env);
    expect(r.stderr).not.toMatch(/%/);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${images.feature.reference}@${images.feature.manifestDigest}\n`);
    const erofs = path.join(home, 'cache', 'oci', 'erofs', 'sha256', `${images.feature.manifestDigest.slice(7)}.erofs`);
    expect(fs.statSync(erofs).size).toBeGreaterThan(4096);

    const listed = JSON.parse(smolvm(['image', 'ls', '--json'], env).stdout);
    expect(listed).toEqual([
      {
        reference: images.feature.reference,
        platform: 'linux/amd64',
        manifestDigest: images.feature.manifestDigest,
        size: expect.any(Number),
        pulledAt: expect.any(String),
      },
    ]);
    const table = smolvm(['image', 'ls'], env).stdout.split('\n');
    expect(table[0]).toMatch(/^REFERENCE\s+PLATFORM\s+DIGEST\s+SIZE\s+PULLED$/);
    expect(table[1].startsWith(images.feature.reference)).toBe(true);
  });

  it('pull shows a byte progress bar on a terminal', () => {
    // `script` gives the CLI a pseudo-terminal, as a user's shell would.
    const cmd = `${process.execPath} ${CLI} image pull -I ${images.dockerFormat.reference}`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/pulling .*\d+% \| [\d.]+ [KM]?B \/ [\d.]+ [KM]?B \| [\d.]+ [KM]?B\/s \| ETA/);
    expect(r.stdout).toContain(`${images.dockerFormat.reference}@${images.dockerFormat.manifestDigest}`);
  });

  it('pull --platform picks from a multi-arch index; --json reports it', () => {
    const r = smolvm(['image', 'pull', '-I', images.multiarch.reference, '--platform', 'linux/arm64', '--json'], env);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.platform).toMatch(/^linux\/arm64/);
    expect(out.manifestDigest).toBe(images.multiarch.arm64.manifestDigest);
  });

  it('a missing image is one error line, exit 1, and nothing stored', () => {
    const ref = `${open.host}/smolvm-test/feature:nope`;
    const r = smolvm(['image', 'pull', '-I', ref], env);
    expect(r.status).toBe(1);
    expect(r.stderr.startsWith(`error: image ${ref} not found`)).toBe(true);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(JSON.parse(smolvm(['image', 'ls', '--json'], env).stdout)).toEqual([]);
  });

  it('a malformed reference is a usage error (exit 2)', () => {
    const r = smolvm(['image', 'pull', '-I', 'alpine@sha256:abc'], env);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error: .*sha256.*64/);
  });

  it('rm removes the image and frees its data at once; rm again is an error', () => {
    expect(smolvm(['image', 'pull', '-I', images.feature.reference], env).status).toBe(0);
    const blobs = path.join(home, 'cache', 'oci', 'blobs', 'sha256');
    expect(fs.readdirSync(blobs).length).toBeGreaterThan(2);
    const r = smolvm(['image', 'rm', '-I', images.feature.reference], env);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`removed ${images.feature.reference}@${images.feature.manifestDigest}\n`);
    expect(fs.readdirSync(blobs)).toEqual([]);
    expect(fs.readdirSync(path.join(home, 'cache', 'oci', 'erofs', 'sha256'))).toEqual([]);
    const again = smolvm(['image', 'rm', '-I', images.feature.reference], env);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(
      /^error: image .* is not in the local store; list local images with 'smolvm image ls'\n$/,
    );
  });

  it('prune --dry-run --json reports without deleting', () => {
    const r = smolvm(['image', 'prune', '--dry-run', '--json'], env);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      removedBlobs: [],
      removedErofs: [],
      removedTemp: 0,
      freedBytes: 0,
      dryRun: true,
    });
  });
});

describe('registry credentials', () => {
  it('a private registry without credentials fails with a pointer to `config registries edit`', () => {
    const r = smolvm(['image', 'pull', '-I', privateRef], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /^error: authentication (required|failed) for 127\.0\.0\.1:\d+.*smolvm config registries edit/,
    );
  });

  it('config registries edit creates the file 0600, validates it, and the credentials work', () => {
    const [user, password] = Object.entries(DEFAULT_USERS)[0];
    const editor = writeEditor(`[registries."${basic.host}"]\nusername = "${user}"\npassword = "${password}"`);
    const r = smolvm(['config', 'registries', 'edit'], { ...env, EDITOR: editor, VISUAL: '' });
    expect(r.status).toBe(0);
    const file = path.join(home, 'config', 'registries.toml');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(r.stderr).toContain(`${file}: ok (1 registries)`);
    const pull = smolvm(['image', 'pull', '-I', privateRef], env);
    expect(pull.stderr).toBe(`pulled ${privateRef} (linux/amd64, ${pull.stderr.match(/, ([^)]+)\)/)?.[1]})\n`);
    expect(pull.status).toBe(0);
  });

  it('an invalid registries file is reported with file:line, exit 2', () => {
    const editor = writeEditor(`[registries."${basic.host}"]\nusername = "u"\npasword = "typo"`);
    const r = smolvm(['config', 'registries', 'edit'], { ...env, EDITOR: editor, VISUAL: '' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(`^error: ${path.join(home, 'config', 'registries.toml').replace(/[.]/g, '\\.')}:3: .*pasword`),
    );
  });

  it('a missing editor is a clear error', () => {
    const r = smolvm(['config', 'registries', 'edit'], { ...env, EDITOR: 'no-such-editor-xyz', VISUAL: '' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot start the editor 'no-such-editor-xyz': ENOENT; set EDITOR/);
  });
});
