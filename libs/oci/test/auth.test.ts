// Authentication against real registries: htpasswd basic auth, and token auth with a token
// service (anonymous and credentialed bearer flows, refresh tokens), plus redirects.
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry, type RegistryFixture } from '../../../tools/fixtures/registry';
import { featureImage, pushBuiltImage, type PushedImage } from '../../../tools/fixtures/images';
import { startProxy } from '../../../tools/fixtures/proxy';
import { RegistryAuthError, RegistryClient, RegistryConfig, ImageService } from '../src';
import { assertStoreVerified, newService, tempHome, type TempHome } from './helpers/env';

jest.setTimeout(60_000);

let basic: RegistryFixture;
let token: RegistryFixture;
let basicImage: PushedImage;
let publicImage: PushedImage;
let privateImage: PushedImage;
let home: TempHome;
const PASSWORD = 'smolvm-password';

async function seed(registry: RegistryFixture, repos: string[]): Promise<PushedImage[]> {
  const client = new RegistryClient({
    config: RegistryConfig.fromSettings({ [registry.host]: { username: 'smolvm', password: PASSWORD } }),
  });
  try {
    const image = featureImage();
    const out: PushedImage[] = [];
    for (const repo of repos) out.push(await pushBuiltImage(client, `${registry.host}/${repo}:latest`, image));
    return out;
  } finally {
    await client.close();
  }
}

beforeAll(async () => {
  [basic, token] = await Promise.all([startRegistry({ auth: 'basic' }), startRegistry({ auth: 'token' })]);
  [basicImage] = await seed(basic, ['smolvm-test/feature']);
  [publicImage, privateImage] = await seed(token, ['smolvm-test/feature', 'private/feature']);
});
afterAll(async () => {
  await basic?.stop();
  await token?.stop();
});
beforeEach(() => {
  home = tempHome();
});
afterEach(() => home.cleanup());

async function pullWith(settings: Parameters<typeof newService>[1], reference: string): Promise<ImageService> {
  const service = newService(home, settings);
  try {
    await service.pull(reference);
    return service;
  } finally {
    await service.close();
  }
}

function authError(promise: Promise<unknown>): Promise<RegistryAuthError> {
  return promise.then(
    () => {
      throw new Error('expected an authentication error');
    },
    (err: unknown) => {
      expect(err).toBeInstanceOf(RegistryAuthError);
      return err as RegistryAuthError;
    },
  );
}

describe('basic auth (htpasswd)', () => {
  it('pulls with credentials from registries.toml', async () => {
    const service = await pullWith({ [basic.host]: { username: 'smolvm', password: PASSWORD } }, basicImage.reference);
    expect(service.list().map((r) => r.manifestDigest)).toEqual([basicImage.manifestDigest]);
  });

  it('pulls with credentials from ~/.docker/config.json (base64 auth field)', async () => {
    const dockerDir = path.join(home.home, '.docker');
    fs.mkdirSync(dockerDir);
    fs.writeFileSync(
      path.join(dockerDir, 'config.json'),
      JSON.stringify({ auths: { [basic.host]: { auth: Buffer.from(`smolvm:${PASSWORD}`).toString('base64') } } }),
    );
    const service = new ImageService({ env: home.env, retry: { backoffMs: 20 } });
    try {
      const pulled = await service.pull(basicImage.reference);
      expect(pulled.record.manifestDigest).toBe(basicImage.manifestDigest);
    } finally {
      await service.close();
    }
  });

  it('says authentication required, with the remedy, when there are no credentials', async () => {
    const err = await authError(pullWith({}, basicImage.reference));
    expect(err.message).toMatch(new RegExp(`^authentication required for ${basic.host}`));
    expect(err.remedy).toBe(`run 'smolvm config registries edit' to set credentials for ${basic.host}`);
  });

  it('says authentication failed for a wrong password, and stores nothing', async () => {
    const err = await authError(
      pullWith({ [basic.host]: { username: 'smolvm', password: 'wrong' } }, basicImage.reference),
    );
    expect(err.message).toMatch(new RegExp(`^authentication failed for ${basic.host}`));
    expect(err.remedy).toMatch(/smolvm config registries edit/);
    expect(fs.existsSync(path.join(home.home, 'cache', 'oci', 'images'))).toBe(false);
  });

  it('follows blob redirects to another origin without sending our Authorization there', async () => {
    const storage = await startProxy({
      target: basic.url,
      upstreamAuthorization: `Basic ${Buffer.from(`smolvm:${PASSWORD}`).toString('base64')}`,
    });
    const front = await startProxy({ target: basic.url, redirectBlobsTo: storage.url });
    try {
      const reference = basicImage.reference.replace(basic.host, front.host);
      const service = newService(home, { [front.host]: { username: 'smolvm', password: PASSWORD } });
      try {
        const pulled = await service.pull(reference);
        expect(pulled.record.manifestDigest).toBe(basicImage.manifestDigest);
        assertStoreVerified(service);
      } finally {
        await service.close();
      }
      const blobGets = storage.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/'));
      expect(blobGets.length).toBe(4);
      for (const r of blobGets) expect(r.authorization).toBeUndefined();
      expect(front.requests.some((r) => r.authorization?.startsWith('Basic '))).toBe(true);
    } finally {
      await front.close();
      await storage.close();
    }
  });
});

describe('token auth (bearer)', () => {
  it('pulls a public repository anonymously through the token service', async () => {
    const before = token.tokenServer?.requests.length ?? 0;
    const service = await pullWith({}, publicImage.reference);
    expect(service.list()).toHaveLength(1);
    const requests = token.tokenServer?.requests.slice(before) ?? [];
    // One token per repository scope, reused for every blob.
    expect(requests).toEqual([
      { method: 'GET', account: undefined, scopes: ['repository:smolvm-test/feature:pull'], status: 200 },
    ]);
  });

  it('says authentication required for a private repository without credentials', async () => {
    const err = await authError(pullWith({}, privateImage.reference));
    expect(err.message).toMatch(new RegExp(`^authentication required for ${token.host}`));
    expect(err.remedy).toMatch(/smolvm config registries edit/);
  });

  it('pulls a private repository with credentials (token endpoint with basic credentials)', async () => {
    const before = token.tokenServer?.requests.length ?? 0;
    const service = await pullWith(
      { [token.host]: { username: 'smolvm', password: PASSWORD } },
      privateImage.reference,
    );
    expect(service.list().map((r) => r.manifestDigest)).toEqual([privateImage.manifestDigest]);
    const requests = token.tokenServer?.requests.slice(before) ?? [];
    expect(requests.map((r) => [r.account, r.status])).toEqual([['smolvm', 200]]);
  });

  it('says authentication failed when the token service rejects the password', async () => {
    const err = await authError(
      pullWith({ [token.host]: { username: 'smolvm', password: 'wrong' } }, privateImage.reference),
    );
    expect(err.message).toMatch(
      new RegExp(
        `^authentication failed for ${token.host} \\(the token service at http://127\\.0\\.0\\.1:\\d+ rejected the credentials`,
      ),
    );
  });

  it('uses an identity token from docker config.json as an OAuth2 refresh token', async () => {
    const dockerDir = path.join(home.home, '.docker');
    fs.mkdirSync(dockerDir);
    fs.writeFileSync(
      path.join(dockerDir, 'config.json'),
      JSON.stringify({ auths: { [token.host]: { auth: '', identitytoken: 'refresh-smolvm' } } }),
    );
    const before = token.tokenServer?.requests.length ?? 0;
    const service = new ImageService({ env: home.env, retry: { backoffMs: 20 } });
    try {
      expect((await service.pull(privateImage.reference)).record.manifestDigest).toBe(privateImage.manifestDigest);
    } finally {
      await service.close();
    }
    expect(token.tokenServer?.requests.slice(before).map((r) => [r.method, r.account])).toEqual([['POST', 'smolvm']]);
  });

  it('pushes with credentials and is refused push anonymously', async () => {
    const anonymous = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
    try {
      await expect(
        pushBuiltImage(anonymous, `${token.host}/smolvm-test/anon-push:latest`, featureImage()),
      ).rejects.toThrow(RegistryAuthError);
    } finally {
      await anonymous.close();
    }
  });
});
