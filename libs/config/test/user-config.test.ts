// config.toml: the base image of bare VMs, SMOLVM_BASE_IMAGE first; bad files are usage errors with file:line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@smolvm/common';
import { loadUserConfig, userConfigPath } from '../src';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-userconfig-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const write = (text: string) => {
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, text);
  return file;
};

it('is empty without a file; reads base_image; SMOLVM_BASE_IMAGE wins', () => {
  expect(userConfigPath({ SMOLVM_HOME: dir })).toBe(path.join(dir, 'config', 'config.toml'));
  expect(loadUserConfig({}, path.join(dir, 'missing.toml'))).toEqual({});
  const file = write('# my base\nbase_image = "alpine:3.20"\n');
  expect(loadUserConfig({}, file)).toEqual({ baseImage: 'alpine:3.20', baseImageSource: file });
  expect(loadUserConfig({ SMOLVM_BASE_IMAGE: '127.0.0.1:5000/base:1' }, file)).toEqual({
    baseImage: '127.0.0.1:5000/base:1',
    baseImageSource: 'SMOLVM_BASE_IMAGE',
  });
});

it.each([
  ['base_image = 3\n', /config\.toml:1: 'base_image': must be an image reference string/],
  ['\nbase_image = "Not An Image"\n', /config\.toml:2: 'base_image': is not an image reference/],
  ['base_imag = "alpine"\n', /config\.toml:1: 'base_imag': unknown key 'base_imag'/],
  ['base_image = \n', /config\.toml:1: /],
])('refuses %j with file:line', (text, message) => {
  const file = write(text);
  expect(() => loadUserConfig({}, file)).toThrow(ConfigError);
  expect(() => loadUserConfig({}, file)).toThrow(message);
});

it('refuses a SMOLVM_BASE_IMAGE that is no reference', () => {
  expect(() => loadUserConfig({ SMOLVM_BASE_IMAGE: 'UPPER CASE' })).toThrow(
    /'SMOLVM_BASE_IMAGE': is not an image reference/,
  );
});
