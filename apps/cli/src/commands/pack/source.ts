import { isPackReference } from '@smolvm/pack/local';

/**
 * A `--from` value as a pack file: a path as it is (without loading the registry client), a
 * reference pulled into the pack cache (pull.handler.ts).
 */
export async function packPathFrom(value: string, quiet: boolean): Promise<string> {
  return isPackReference(value) ? (await import('./pull.handler')).packFileFrom(value, quiet) : value;
}
