// Shared test setup: a throwaway SMOLVM_HOME per test and store checks that hold whatever happened.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRegistry, type RegistryFixture } from '../../../../tools/fixtures/registry';
import { pushTestImages, type TestImages } from '../../../../tools/fixtures/images';
import {
  ImageService,
  RegistryClient,
  RegistryConfig,
  type ImageServiceOptions,
  type RegistrySettings,
} from '../../src';

export interface TempHome {
  home: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

export function tempHome(): TempHome {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'oci-home-'));
  return {
    home,
    env: { SMOLVM_HOME: home, HOME: home },
    cleanup: () => fs.rmSync(home, { recursive: true, force: true }),
  };
}

/** A service on the temp home; fast retries so fault tests do not wait for production backoff. */
export function newService(
  home: TempHome,
  settings: Record<string, RegistrySettings> = {},
  extra: ImageServiceOptions = {},
): ImageService {
  return new ImageService({
    env: home.env,
    config: RegistryConfig.fromSettings(settings),
    retry: { backoffMs: 20 },
    ...extra,
  });
}

export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Every file in blobs/sha256 is named by the sha256 of its content, and nothing else lies there. */
export function assertStoreVerified(service: ImageService): string[] {
  const names = listDir(service.store.blobsDir);
  for (const name of names) {
    expect(name).toMatch(/^[a-f0-9]{64}$/);
    const hash = crypto
      .createHash('sha256')
      .update(fs.readFileSync(path.join(service.store.blobsDir, name)))
      .digest('hex');
    expect(hash).toBe(name);
  }
  return names.map((n) => `sha256:${n}`);
}

/** A fresh local registry (anonymous pulls) with the standard test images pushed to it. */
export async function startRegistryWithImages(): Promise<{ registry: RegistryFixture; images: TestImages }> {
  const registry = await startRegistry();
  const client = new RegistryClient({ config: RegistryConfig.fromSettings({}) });
  try {
    return { registry, images: await pushTestImages(client, registry.host) };
  } finally {
    await client.close();
  }
}

export interface TestRegistry {
  registry: RegistryFixture;
  images: TestImages;
  home: TempHome;
  service: ImageService;
}

/**
 * A local registry holding the standard test images for the whole file, and a fresh home and
 * image service for every test. Read the fields inside tests and hooks (they are set by then).
 */
export function useTestRegistry(): TestRegistry {
  const t = {} as TestRegistry;
  beforeAll(async () => {
    Object.assign(t, await startRegistryWithImages());
  });
  afterAll(async () => {
    await t.registry?.stop();
  });
  beforeEach(() => {
    t.home = tempHome();
    t.service = newService(t.home);
  });
  afterEach(async () => {
    await t.service.close();
    t.home.cleanup();
  });
  return t;
}
