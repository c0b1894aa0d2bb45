// Reference parsing lives in @smolvm/config (one grammar for the CLI, Smolfiles and us); this
// file adds what the registry client needs on top: the default tag and the store's key.
import { formatReference, parseImageReference, type ImageReference } from '@smolvm/config';

export { formatReference, parseImageReference, type ImageReference };

export const DEFAULT_TAG = 'latest';

/** Accepts a string (parsed with Docker Hub conventions) or an already parsed reference. */
export function toReference(input: string | ImageReference): ImageReference {
  const ref = typeof input === 'string' ? parseImageReference(input) : { ...input };
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** What a manifest request names: the digest when there is one (immutable), else the tag. */
export function manifestSelector(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
