// Narrowing for parsed JSON that nobody vouches for (files, registries, the guest).

/** A JSON object: not null, not an array. Its fields are still unknown. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
