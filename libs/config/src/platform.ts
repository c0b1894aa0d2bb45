import { invalid } from './invalid';
import { closestMatch } from './suggest';

/** A platform, with the OCI image spec's field names: the one type every lib uses. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

const REMEDY = 'write OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8';

/**
 * Only the architectures smolvm can boot without emulation. Everything else would parse fine
 * and then fail at VM start, which is the worse place to find out.
 */
const VARIANTS: Record<string, readonly string[]> = {
  amd64: ['v1', 'v2', 'v3', 'v4'],
  arm64: [
    'v8',
    'v8.0',
    'v8.1',
    'v8.2',
    'v8.3',
    'v8.4',
    'v8.5',
    'v8.6',
    'v8.7',
    'v8.8',
    'v8.9',
    'v9',
    'v9.0',
    'v9.1',
    'v9.2',
    'v9.3',
    'v9.4',
    'v9.5',
  ],
};

/** Names people type from `uname -m` that OCI spells differently. Suggested, never rewritten. */
const ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', arm64v8: 'arm64' };

/**
 * `OS/ARCH[/VARIANT]` cut into its parts, which are not judged (a variant may be ""); undefined
 * when the text has not two or three parts. Both parsers start here: parsePlatform for a target
 * the user names, @smolvm/oci's for what registries and the image store say.
 */
export function splitPlatform(text: string): Platform | undefined {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3) return undefined;
  const [os, architecture, variant] = parts;
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** A platform smolvm can boot without emulation (Smolfile `platform`, `pack create --platform`). */
export function parsePlatform(spec: string): Platform {
  const split = splitPlatform(spec);
  if (!split) throw invalid('platform', spec, 'expected OS/ARCH or OS/ARCH/VARIANT', REMEDY);
  const { os, architecture, variant } = split;
  if (os !== 'linux') {
    throw invalid(
      'platform',
      spec,
      `OS "${os}" is not supported; smolvm guests run Linux`,
      `write linux/${architecture || 'amd64'}`,
    );
  }
  const variants = VARIANTS[architecture];
  if (!variants) {
    const suggestion = ALIASES[architecture.toLowerCase()] ?? closestMatch(architecture, Object.keys(VARIANTS));
    const why = `architecture "${architecture}" is not supported (supported: ${Object.keys(VARIANTS).join(', ')})`;
    throw invalid('platform', spec, why, suggestion ? `did you mean linux/${suggestion}?` : REMEDY);
  }
  if (variant === undefined) return { os, architecture };
  if (!variants.includes(variant)) {
    throw invalid(
      'platform',
      spec,
      `variant "${variant}" is not valid for ${architecture}`,
      `use one of ${variants.filter((v) => !v.includes('.')).join(', ')}, or omit the variant`,
    );
  }
  return { os, architecture, variant };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((p) => p !== undefined).join('/');
}
