import { UsageError } from '@smolvm/common';
import {
  DEFAULT_ARTIFACT_REGISTRY,
  formatReference,
  parseArtifactReference,
  parseDigest,
  parseImageReference,
  withDefaultTag,
  type ImageReference,
} from '../src';

const HEX = '0123456789abcdef'.repeat(4);
const DIGEST = `sha256:${HEX}`;
const IMAGE_HINT =
  'write a reference such as alpine, python:3.12-alpine, ghcr.io/org/app:v1 or localhost:5000/app@sha256:<64 hex>';
const DIGEST_RULE = 'digest references require sha256: followed by exactly 64 lowercase hex characters';
const TAG_HINT = 'a tag is up to 128 letters, digits, "_", "." and "-", not starting with "." or "-", e.g. v1.0';

describe('parseImageReference: Docker Hub conventions and registries', () => {
  const good: Array<[string, ImageReference, string]> = [
    ['alpine', { registry: 'docker.io', repository: 'library/alpine' }, 'docker.io/library/alpine'],
    [
      'alpine:3.19',
      { registry: 'docker.io', repository: 'library/alpine', tag: '3.19' },
      'docker.io/library/alpine:3.19',
    ],
    [
      'python:3.12-alpine',
      { registry: 'docker.io', repository: 'library/python', tag: '3.12-alpine' },
      'docker.io/library/python:3.12-alpine',
    ],
    ['ubuntu', { registry: 'docker.io', repository: 'library/ubuntu' }, 'docker.io/library/ubuntu'],
    [
      'r-base:latest',
      { registry: 'docker.io', repository: 'library/r-base', tag: 'latest' },
      'docker.io/library/r-base:latest',
    ],
    ['user/app', { registry: 'docker.io', repository: 'user/app' }, 'docker.io/user/app'],
    ['docker.io/alpine', { registry: 'docker.io', repository: 'library/alpine' }, 'docker.io/library/alpine'],
    [
      'index.docker.io/library/alpine:latest',
      { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' },
      'docker.io/library/alpine:latest',
    ],
    ['Docker.IO/alpine', { registry: 'docker.io', repository: 'library/alpine' }, 'docker.io/library/alpine'],
    [
      '127.0.0.1:5000/test/busybox:1',
      { registry: '127.0.0.1:5000', repository: 'test/busybox', tag: '1' },
      '127.0.0.1:5000/test/busybox:1',
    ],
    ['localhost/app', { registry: 'localhost', repository: 'app' }, 'localhost/app'],
    [
      'localhost:5000/a/b/c:v2',
      { registry: 'localhost:5000', repository: 'a/b/c', tag: 'v2' },
      'localhost:5000/a/b/c:v2',
    ],
    // Without a "/", "localhost:5000" is a repository with a tag, exactly as Docker reads it.
    [
      'localhost:5000',
      { registry: 'docker.io', repository: 'library/localhost', tag: '5000' },
      'docker.io/library/localhost:5000',
    ],
    ['[::1]:5000/app:v1', { registry: '[::1]:5000', repository: 'app', tag: 'v1' }, '[::1]:5000/app:v1'],
    ['ghcr.io/org/app', { registry: 'ghcr.io', repository: 'org/app' }, 'ghcr.io/org/app'],
    [
      `ghcr.io/org/app@${DIGEST}`,
      { registry: 'ghcr.io', repository: 'org/app', digest: DIGEST },
      `ghcr.io/org/app@${DIGEST}`,
    ],
    [
      `ghcr.io/org/app:v1@${DIGEST}`,
      { registry: 'ghcr.io', repository: 'org/app', tag: 'v1', digest: DIGEST },
      `ghcr.io/org/app:v1@${DIGEST}`,
    ],
    ['a__b/c---d/e.f_g', { registry: 'docker.io', repository: 'a__b/c---d/e.f_g' }, 'docker.io/a__b/c---d/e.f_g'],
    [
      'reg.io/x:_Tag.With-Mixed_1',
      { registry: 'reg.io', repository: 'x', tag: '_Tag.With-Mixed_1' },
      'reg.io/x:_Tag.With-Mixed_1',
    ],
    ['reg.io:08080/x', { registry: 'reg.io:8080', repository: 'x' }, 'reg.io:8080/x'],
    [
      `alpine:${'t'.repeat(128)}`,
      { registry: 'docker.io', repository: 'library/alpine', tag: 't'.repeat(128) },
      `docker.io/library/alpine:${'t'.repeat(128)}`,
    ],
  ];
  it.each(good)('%s', (input, expected, canonical) => {
    const ref = parseImageReference(input);
    expect(ref).toEqual(expected);
    expect(formatReference(ref)).toBe(canonical);
    // The canonical form must itself parse back to the same reference.
    expect(parseImageReference(canonical)).toEqual(expected);
  });
});

describe('parseArtifactReference: every example of the reference', () => {
  const good: Array<[string, ImageReference]> = [
    ['python-dev', { registry: 'registry.smolmachines.com', repository: 'python-dev' }],
    ['python-dev:v1.0', { registry: 'registry.smolmachines.com', repository: 'python-dev', tag: 'v1.0' }],
    ['binsquare/custom:v1', { registry: 'registry.smolmachines.com', repository: 'binsquare/custom', tag: 'v1' }],
    ['smolmachines.com/python-dev:latest', { registry: 'smolmachines.com', repository: 'python-dev', tag: 'latest' }],
    [
      'smolmachines.com/binsquare/custom:v1',
      { registry: 'smolmachines.com', repository: 'binsquare/custom', tag: 'v1' },
    ],
    [`python-dev@${DIGEST}`, { registry: 'registry.smolmachines.com', repository: 'python-dev', digest: DIGEST }],
    ['localhost:5000/python-dev:v2', { registry: 'localhost:5000', repository: 'python-dev', tag: 'v2' }],
  ];
  it.each(good)('%s', (input, expected) => {
    expect(parseArtifactReference(input)).toEqual(expected);
  });

  it('uses registry.smolmachines.com as default registry and never adds library/', () => {
    expect(DEFAULT_ARTIFACT_REGISTRY).toBe('registry.smolmachines.com');
    expect(formatReference(parseArtifactReference('python-dev'))).toBe('registry.smolmachines.com/python-dev');
  });

  it('sends names without a registry to a configured default registry, and only those', () => {
    expect(parseArtifactReference('binsquare/custom:v1', 'registry.lan:5000')).toEqual({
      registry: 'registry.lan:5000',
      repository: 'binsquare/custom',
      tag: 'v1',
    });
    expect(parseArtifactReference('smolmachines.com/python-dev', 'registry.lan:5000').registry).toBe(
      'smolmachines.com',
    );
    expect(() => parseArtifactReference('Python-Dev', 'registry.lan:5000')).toThrow(
      'invalid artifact reference "Python-Dev"',
    );
  });
});

describe('withDefaultTag and formatReference', () => {
  it('adds latest only when neither tag nor digest is present', () => {
    expect(withDefaultTag(parseImageReference('alpine'))).toEqual({
      registry: 'docker.io',
      repository: 'library/alpine',
      tag: 'latest',
    });
    expect(withDefaultTag(parseImageReference('alpine:3'))).toEqual({
      registry: 'docker.io',
      repository: 'library/alpine',
      tag: '3',
    });
    expect(withDefaultTag(parseImageReference(`alpine@${DIGEST}`))).toEqual({
      registry: 'docker.io',
      repository: 'library/alpine',
      digest: DIGEST,
    });
    expect(formatReference(withDefaultTag(parseArtifactReference('python-dev')))).toBe(
      'registry.smolmachines.com/python-dev:latest',
    );
  });

  it('parseDigest accepts only sha256 with 64 lowercase hex', () => {
    expect(parseDigest(DIGEST)).toBe(DIGEST);
    expect(() => parseDigest('sha256:abc')).toThrow(
      `invalid digest "sha256:abc": digest has 3 hex characters, expected exactly 64`,
    );
  });
});

describe('bad references are rejected with a precise reason', () => {
  const bad: Array<[string, string, string]> = [
    ['', 'is empty', IMAGE_HINT],
    ['Alpine', 'repository component "Alpine" must be lowercase', 'write alpine'],
    ['reg.io/App', 'repository component "App" must be lowercase', 'write app'],
    ['alpine:', 'tag after ":" is empty', TAG_HINT],
    ['alpine@', 'digest after "@" is empty', DIGEST_RULE],
    [':tag', 'repository name is empty', IMAGE_HINT],
    ['/alpine', 'repository has an empty path component ("//" or a leading/trailing "/")', IMAGE_HINT],
    ['alpine/', 'repository has an empty path component ("//" or a leading/trailing "/")', IMAGE_HINT],
    ['a//b', 'repository has an empty path component ("//" or a leading/trailing "/")', IMAGE_HINT],
    ['localhost:5000/', 'repository name is empty', IMAGE_HINT],
    ['alpine:latest:x', 'tag "latest:x" is invalid', TAG_HINT],
    ['alpine:-x', 'tag "-x" is invalid', TAG_HINT],
    ['alpine:.x', 'tag ".x" is invalid', TAG_HINT],
    [`alpine:${'x'.repeat(129)}`, 'tag is 129 characters long; the limit is 128', TAG_HINT],
    [`alpine@sha512:${HEX}`, 'digest algorithm "sha512" is not supported', DIGEST_RULE],
    [`alpine@SHA256:${HEX}`, 'digest algorithm "SHA256" is not supported', DIGEST_RULE],
    [`alpine@sha256:${HEX.toUpperCase()}`, 'digest hex must be lowercase', DIGEST_RULE],
    [`alpine@sha256:${HEX}0`, 'digest has 65 hex characters, expected exactly 64', DIGEST_RULE],
    [`alpine@sha256:${HEX.slice(1)}`, 'digest has 63 hex characters, expected exactly 64', DIGEST_RULE],
    ['python-dev@sha256:abcdef0123', 'digest has 10 hex characters, expected exactly 64', DIGEST_RULE],
    [`alpine@sha256:${'g'.repeat(64)}`, 'digest contains non-hex characters', DIGEST_RULE],
    [`alpine@${HEX}`, `digest "${HEX}" has no algorithm`, DIGEST_RULE],
    [`alpine@${DIGEST}@${DIGEST}`, 'contains more than one "@"', DIGEST_RULE],
    ['https://docker.io/alpine', 'contains a URL scheme "https://"', 'remove it: docker.io/alpine'],
    ['al pine', 'contains whitespace', IMAGE_HINT],
    ['alpine ', 'contains whitespace', IMAGE_HINT],
    [
      'a_-b',
      'repository component "a_-b" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"',
      IMAGE_HINT,
    ],
    [
      'a..b',
      'repository component "a..b" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"',
      IMAGE_HINT,
    ],
    [
      'a___b',
      'repository component "a___b" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"',
      IMAGE_HINT,
    ],
    [
      '-alpine',
      'repository component "-alpine" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"',
      IMAGE_HINT,
    ],
    [
      'alpine-',
      'repository component "alpine-" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"',
      IMAGE_HINT,
    ],
    ['my_reg.io/app', 'registry "my_reg.io" has an invalid host label "my_reg"', IMAGE_HINT],
    ['-reg.io/app', 'registry "-reg.io" has an invalid host label "-reg"', IMAGE_HINT],
    ['reg.io:0/app', 'registry "reg.io:0" port 0 is out of range 1-65535', IMAGE_HINT],
    ['reg.io:70000/app', 'registry "reg.io:70000" port 70000 is out of range 1-65535', IMAGE_HINT],
    ['reg.io:abc/app', 'registry "reg.io:abc" has a non-numeric port "abc"', IMAGE_HINT],
    ['reg.io:/app', 'registry "reg.io:" has an empty port after ":"', IMAGE_HINT],
    ['[::1/app', 'registry "[::1" has an unclosed "["', IMAGE_HINT],
    ['[zz]:5000/app', 'registry "[zz]:5000" is not a valid IPv6 address', IMAGE_HINT],
    [
      `reg.io/${'a'.repeat(250)}`,
      `name "reg.io/${'a'.repeat(250)}" is 257 characters long; the limit is 255`,
      'use a shorter repository name',
    ],
  ];
  it.each(bad)('%j', (input, why, remedy) => {
    let caught: unknown;
    try {
      parseImageReference(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as UsageError).message).toBe(`invalid image reference ${JSON.stringify(input)}: ${why}`);
    expect((caught as UsageError).remedy).toBe(remedy);
  });

  it('artifact references use their own wording and examples', () => {
    expect(() => parseArtifactReference('Python-Dev')).toThrow(
      'invalid artifact reference "Python-Dev": repository component "Python-Dev" must be lowercase',
    );
    expect(() => parseArtifactReference('.hidden')).toThrow(
      'invalid artifact reference ".hidden": repository component ".hidden" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"',
    );
    try {
      parseArtifactReference('');
    } catch (err) {
      expect((err as UsageError).remedy).toBe(
        'write a reference such as python-dev, python-dev:v1.0, binsquare/custom:v1 or smolmachines.com/python-dev:latest',
      );
    }
    expect.assertions(3);
  });
});
