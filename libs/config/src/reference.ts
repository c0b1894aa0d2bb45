// OCI references (distribution/reference grammar) for images and machine artifacts. Both share
// one grammar and differ only in the registry used when none is written.
import { DEFAULT_ARTIFACT_REGISTRY, DEFAULT_IMAGE_REGISTRY, DEFAULT_TAG } from './defaults';
import { invalid } from './invalid';
import { parseIPv6 } from './ip';

export interface ImageReference {
  /** Host with optional port, lowercased; "index.docker.io" is spelled "docker.io". */
  registry: string;
  /** Full path inside the registry, e.g. "library/alpine". */
  repository: string;
  tag?: string;
  /** "sha256:<64 lowercase hex>". When both are present the digest decides what is pulled. */
  digest?: string;
}

interface Conventions {
  kind: string;
  defaultRegistry: string;
  examples: string;
}

const IMAGE: Conventions = {
  kind: 'image reference',
  defaultRegistry: DEFAULT_IMAGE_REGISTRY,
  examples:
    'write a reference such as alpine, python:3.12-alpine, ghcr.io/org/app:v1 or localhost:5000/app@sha256:<64 hex>',
};
const ARTIFACT: Conventions = {
  kind: 'artifact reference',
  defaultRegistry: DEFAULT_ARTIFACT_REGISTRY,
  examples:
    'write a reference such as python-dev, python-dev:v1.0, binsquare/custom:v1 or smolmachines.com/python-dev:latest',
};

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST_RULE = 'digest references require sha256: followed by exactly 64 lowercase hex characters';
/** Registries reject longer names; failing here gives a clearer message than an HTTP 400. */
export const MAX_REFERENCE_NAME_LENGTH = 255;

/** Validates `sha256:<64 lowercase hex>`; returns the problem, or undefined when valid. */
function digestProblem(digest: string): string | undefined {
  const colon = digest.indexOf(':');
  if (colon === -1) return `digest "${digest}" has no algorithm`;
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  if (algorithm !== 'sha256') return `digest algorithm "${algorithm}" is not supported`;
  if (/^[0-9a-fA-F]*$/.test(hex) && /[A-F]/.test(hex) && hex.length === 64) return 'digest hex must be lowercase';
  if (!/^[0-9a-fA-F]*$/.test(hex)) return 'digest contains non-hex characters';
  if (hex.length !== 64) return `digest has ${hex.length} hex characters, expected exactly 64`;
  return undefined;
}

/** Validates a standalone digest such as a manifest or layer digest. */
export function parseDigest(input: string): string {
  const problem = digestProblem(input);
  if (problem) throw invalid('digest', input, problem, DIGEST_RULE);
  return input;
}

function parseRegistry(input: string, registry: string, c: Conventions): string {
  const fail = (why: string) => invalid(c.kind, input, `registry "${registry}" ${why}`, c.examples);
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    if (close === -1) throw fail('has an unclosed "["');
    host = registry.slice(0, close + 1);
    const rest = registry.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) throw fail('has text after "]"');
    if (rest !== '') port = rest.slice(1);
    if (!parseIPv6(host.slice(1, -1))) throw fail('is not a valid IPv6 address');
  } else {
    const colon = registry.indexOf(':');
    if (colon !== -1) {
      host = registry.slice(0, colon);
      port = registry.slice(colon + 1);
    }
    if (host === '') throw fail('has an empty host');
    const bad = host.split('.').find((label) => !DOMAIN_COMPONENT.test(label));
    if (bad !== undefined) throw fail(`has an invalid host label "${bad}"`);
  }
  if (port !== undefined) {
    if (port === '') throw fail('has an empty port after ":"');
    if (!/^\d+$/.test(port)) throw fail(`has a non-numeric port "${port}"`);
    const n = Number(port);
    if (n < 1 || n > 65535) throw fail(`port ${n} is out of range 1-65535`);
    port = String(n);
  }
  const normalizedHost = host.toLowerCase() === 'index.docker.io' ? 'docker.io' : host.toLowerCase();
  return port === undefined ? normalizedHost : `${normalizedHost}:${port}`;
}

function checkRepository(input: string, repository: string, c: Conventions): void {
  if (repository === '') throw invalid(c.kind, input, 'repository name is empty', c.examples);
  for (const component of repository.split('/')) {
    if (component === '')
      throw invalid(
        c.kind,
        input,
        'repository has an empty path component ("//" or a leading/trailing "/")',
        c.examples,
      );
    if (PATH_COMPONENT.test(component)) continue;
    if (PATH_COMPONENT.test(component.toLowerCase())) {
      throw invalid(
        c.kind,
        input,
        `repository component "${component}" must be lowercase`,
        `write ${component.toLowerCase()}`,
      );
    }
    throw invalid(
      c.kind,
      input,
      `repository component "${component}" is invalid: only lowercase letters and digits, separated by ".", "_", "__" or "-"`,
      c.examples,
    );
  }
}

function parseReference(input: string, c: Conventions): ImageReference {
  if (input === '') throw invalid(c.kind, input, 'is empty', c.examples);
  if (/\s/.test(input)) throw invalid(c.kind, input, 'contains whitespace', c.examples);
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(input);
  if (scheme)
    throw invalid(c.kind, input, `contains a URL scheme "${scheme[0]}"`, `remove it: ${input.slice(scheme[0].length)}`);

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.includes('@')) throw invalid(c.kind, input, 'contains more than one "@"', DIGEST_RULE);
    if (digest === '') throw invalid(c.kind, input, 'digest after "@" is empty', DIGEST_RULE);
    const problem = digestProblem(digest);
    if (problem) throw invalid(c.kind, input, problem, DIGEST_RULE);
  }

  let tag: string | undefined;
  const tagColon = rest.indexOf(':', rest.lastIndexOf('/') + 1);
  if (tagColon !== -1) {
    tag = rest.slice(tagColon + 1);
    rest = rest.slice(0, tagColon);
    const tagRemedy = 'a tag is up to 128 letters, digits, "_", "." and "-", not starting with "." or "-", e.g. v1.0';
    if (tag === '') throw invalid(c.kind, input, 'tag after ":" is empty', tagRemedy);
    if (tag.length > 128)
      throw invalid(c.kind, input, `tag is ${tag.length} characters long; the limit is 128`, tagRemedy);
    if (!TAG.test(tag)) throw invalid(c.kind, input, `tag "${tag}" is invalid`, tagRemedy);
  }

  if (rest === '') throw invalid(c.kind, input, 'repository name is empty', c.examples);
  let registry = c.defaultRegistry;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    // Docker's rule: a first component can only be a host if it could not be a repository name.
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[')) {
      registry = parseRegistry(input, first, c);
      repository = rest.slice(slash + 1);
    }
  }
  checkRepository(input, repository, c);
  if (registry === DEFAULT_IMAGE_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;
  const name = `${registry}/${repository}`;
  if (name.length > MAX_REFERENCE_NAME_LENGTH) {
    throw invalid(
      c.kind,
      input,
      `name "${name}" is ${name.length} characters long; the limit is ${MAX_REFERENCE_NAME_LENGTH}`,
      'use a shorter repository name',
    );
  }
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** Parses an OCI image reference with Docker Hub conventions ("alpine" is docker.io/library/alpine). */
export function parseImageReference(input: string): ImageReference {
  return parseReference(input, IMAGE);
}

/**
 * Parses a machine artifact reference. A name without a registry goes to `defaultRegistry`
 * (DEFAULT_ARTIFACT_REGISTRY unless the user configured another), and never gets `library/`.
 */
export function parseArtifactReference(
  input: string,
  defaultRegistry: string = DEFAULT_ARTIFACT_REGISTRY,
): ImageReference {
  return parseReference(
    input,
    defaultRegistry === DEFAULT_ARTIFACT_REGISTRY ? ARTIFACT : { ...ARTIFACT, defaultRegistry },
  );
}

/** Canonical `registry/repository[:tag][@digest]`, never abbreviated. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The reference to pull: adds tag "latest" when neither a tag nor a digest was written. */
export function withDefaultTag(ref: ImageReference): ImageReference {
  return ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: DEFAULT_TAG } : ref;
}
