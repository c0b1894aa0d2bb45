import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@smolvm/common';
import { RegistryConfig } from '../src/credentials';
import { decodeDockerAuth, dockerConfigKeyToHost, loadDockerConfigAuths } from '../src/docker-config';
import { ensureRegistriesFile, loadRegistriesFile } from '../src/registries-file';
import { isLoopbackHost, resolveEndpoint } from '../src/endpoint';
import { resolveArtifactReference } from '../src/artifact';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oci-creds-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string, mode = 0o600): string => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text, { mode });
  fs.chmodSync(file, mode);
  return file;
};

describe('docker config.json', () => {
  it('decodes base64 user:password, keeping colons in the password', () => {
    expect(decodeDockerAuth(Buffer.from('alice:pa:ss').toString('base64'))).toEqual({
      username: 'alice',
      password: 'pa:ss',
    });
    expect(decodeDockerAuth(Buffer.from('nocolon').toString('base64'))).toBeUndefined();
  });

  it('normalizes keys (Docker Hub v1 URL, schemes, paths)', () => {
    expect(dockerConfigKeyToHost('https://index.docker.io/v1/')).toBe('docker.io');
    expect(dockerConfigKeyToHost('ghcr.io')).toBe('ghcr.io');
    expect(dockerConfigKeyToHost('http://127.0.0.1:5000/v2/')).toBe('127.0.0.1:5000');
  });

  it('loads auths and identity tokens, notes credential helpers, and warns on a broken file', () => {
    const file = write(
      'config.json',
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:secret').toString('base64') },
          'quay.io': { auth: '', identitytoken: 'refresh-me' },
        },
        credHelpers: { 'gcr.io': 'gcloud' },
      }),
    );
    const auths = loadDockerConfigAuths(file);
    expect(auths.auths.get('docker.io')).toEqual({ username: 'hub', password: 'secret' });
    expect(auths.auths.get('quay.io')).toEqual({ identityToken: 'refresh-me' });
    expect(auths.helperHosts.has('gcr.io')).toBe(true);

    const warnings: string[] = [];
    const broken = write('broken.json', '{nope');
    expect(loadDockerConfigAuths(broken, (m) => warnings.push(m)).auths.size).toBe(0);
    expect(warnings[0]).toMatch(/ignoring .*broken\.json/);
  });
});

describe('registries.toml', () => {
  const toml =
    '[registries."ghcr.io"]\nusername = "me"\npassword = "pw"\n\n[registries."registry.lan:5000"]\ninsecure = true\nmirrors = ["mirror.lan"]\n';

  it('parses credentials, insecure and mirrors', () => {
    const file = loadRegistriesFile(write('registries.toml', toml));
    expect(file.registries.get('ghcr.io')).toEqual({ username: 'me', password: 'pw' });
    expect(file.registries.get('registry.lan:5000')).toEqual({ insecure: true, mirrors: ['mirror.lan'] });
  });

  it('refuses a file with credentials that group or others can read', () => {
    const file = write('registries.toml', toml, 0o644);
    expect(() => loadRegistriesFile(file)).toThrow(ConfigError);
    expect(() => loadRegistriesFile(file)).toThrow(/readable by others \(mode 0644\).*/);
    try {
      loadRegistriesFile(file);
    } catch (err) {
      expect((err as ConfigError).remedy).toBe(`run 'chmod 600 ${file}'`);
    }
  });

  // Issue 14, item 7: mirrors and insecure hosts decide where the images VMs run come from.
  it('refuses a file another user could have written or swapped', () => {
    const file = write('registries.toml', '[registries."registry.lan"]\ninsecure = true\n', 0o646);
    expect(() => loadRegistriesFile(file)).toThrow(
      /^refusing .*registries\.toml: it is writable by other users \(mode 646\)$/,
    );
    fs.chmodSync(file, 0o644);
    fs.chmodSync(dir, 0o777);
    expect(() => loadRegistriesFile(file)).toThrow(
      /^refusing .*oci-creds-\w+: it is writable by its group and other users \(mode 777\)$/,
    );
    fs.chmodSync(dir, 0o700);
    // A symlink of this user (dotfiles) is followed, but its target is checked too.
    const link = path.join(dir, 'link.toml');
    fs.symlinkSync(file, link);
    expect(loadRegistriesFile(link).registries.get('registry.lan')).toEqual({ insecure: true });
    const shared = path.join(dir, 'shared');
    fs.mkdirSync(shared, { mode: 0o777 });
    fs.chmodSync(shared, 0o777);
    fs.renameSync(file, path.join(shared, 'registries.toml'));
    fs.rmSync(link);
    fs.symlinkSync(path.join(shared, 'registries.toml'), link);
    expect(() => loadRegistriesFile(link)).toThrow(
      /^refusing .*\/shared: it is writable by its group and other users \(mode 777\)$/,
    );
    expect(loadRegistriesFile(path.join(dir, 'missing.toml')).registries.size).toBe(0);
  });

  it('accepts a world-readable file without secrets', () => {
    const file = write('registries.toml', '[registries."registry.lan"]\ninsecure = true\n', 0o644);
    expect(loadRegistriesFile(file).registries.get('registry.lan')).toEqual({ insecure: true });
  });

  it('reports bad keys, values and syntax with file, line and key path', () => {
    expect(() => loadRegistriesFile(write('a.toml', '[registries."x.io"]\nuser = "me"\n'))).toThrow(
      /a\.toml:2: 'registries."x.io".user': unknown key 'user'/,
    );
    expect(() => loadRegistriesFile(write('b.toml', '[registries."x.io"]\ninsecure = "yes"\n'))).toThrow(
      /b\.toml:2: 'registries."x\.io"\.insecure': must be true or false/,
    );
    expect(() => loadRegistriesFile(write('c.toml', '[registries."https://x.io"]\ninsecure = true\n'))).toThrow(
      /c\.toml:1: .*is not a registry host/,
    );
    expect(() => loadRegistriesFile(write('d.toml', '[registries."x.io"]\npassword = "p"\n'))).toThrow(
      /d\.toml:1: .*password needs a username/,
    );
    expect(() => loadRegistriesFile(write('e.toml', '[registries\n'))).toThrow(/e\.toml:1/);
  });

  it('reads [artifacts] registry as the default for artifact names, and refuses anything else there', () => {
    const file = write('art.toml', '[artifacts]\nregistry = "Registry.LAN:5000"\n');
    expect(loadRegistriesFile(file).artifactRegistry).toBe('registry.lan:5000');
    const config = RegistryConfig.load({ registriesFile: file, dockerConfig: false });
    expect(config.artifactRegistry).toBe('registry.lan:5000');
    expect(resolveArtifactReference('binsquare/custom', config)).toEqual({
      registry: 'registry.lan:5000',
      repository: 'binsquare/custom',
      tag: 'latest',
    });
    expect(resolveArtifactReference('smolmachines.com/python-dev:v1', config).registry).toBe('smolmachines.com');
    expect(RegistryConfig.load({ registriesFile: write('none.toml', ''), dockerConfig: false }).artifactRegistry).toBe(
      'registry.smolmachines.com',
    );
    expect(() => loadRegistriesFile(write('f.toml', '[artifacts]\nregistry = "https://x.io/v2"\n'))).toThrow(
      /f\.toml:2: 'artifacts\.registry': must be a registry host/,
    );
    expect(() => loadRegistriesFile(write('g.toml', '[artifacts]\nmirror = "x.io"\n'))).toThrow(
      /g\.toml:2: 'artifacts\.mirror': unknown key 'mirror'/,
    );
    // The template documents the table, commented out, and still loads as empty.
    const template = ensureRegistriesFile(path.join(dir, 'tpl.toml'));
    expect(fs.readFileSync(template, 'utf8')).toContain('# [artifacts]');
    expect(loadRegistriesFile(template).artifactRegistry).toBeUndefined();
  });

  it('ensureRegistriesFile creates a private template once and keeps an existing file', () => {
    const file = path.join(dir, 'conf', 'registries.toml');
    ensureRegistriesFile(file);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(loadRegistriesFile(file).registries.size).toBe(0);
    fs.writeFileSync(file, toml);
    ensureRegistriesFile(file);
    expect(fs.readFileSync(file, 'utf8')).toBe(toml);
  });

  it('prefers registries.toml over docker config and falls back to it', () => {
    const registries = write('registries.toml', toml);
    const docker = write(
      'config.json',
      JSON.stringify({
        auths: {
          'ghcr.io': { auth: Buffer.from('dock:er').toString('base64') },
          'quay.io': { auth: Buffer.from('q:uay').toString('base64') },
        },
      }),
    );
    const config = RegistryConfig.load({ registriesFile: registries, dockerConfig: docker });
    expect(config.credentials('ghcr.io')).toMatchObject({
      kind: 'basic',
      username: 'me',
      password: 'pw',
      source: registries,
    });
    expect(config.credentials('quay.io')).toMatchObject({
      kind: 'basic',
      username: 'q',
      password: 'uay',
      source: docker,
    });
    expect(config.credentials('docker.io')).toBeUndefined();
  });
});

describe('endpoints', () => {
  it('uses plain HTTP for loopback and insecure registries only', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('127.45.0.9')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('localhost')).toBe(true);
    expect(isLoopbackHost('10.0.0.1')).toBe(false);
    expect(resolveEndpoint('127.0.0.1:5000').origin).toBe('http://127.0.0.1:5000');
    expect(resolveEndpoint('[::1]:5000').origin).toBe('http://[::1]:5000');
    expect(resolveEndpoint('localhost:5000').origin).toBe('http://localhost:5000');
    expect(resolveEndpoint('docker.io').origin).toBe('https://registry-1.docker.io');
    expect(resolveEndpoint('registry.lan:5000').origin).toBe('https://registry.lan:5000');
    expect(resolveEndpoint('registry.lan:5000', { insecure: true }).origin).toBe('http://registry.lan:5000');
    expect(resolveEndpoint('ghcr.io').address).toBe('ghcr.io:443');
  });
});
