/**
 * Concatenates lists where a later item replaces an earlier one with the same key but keeps the
 * earlier position: overrides win, and the result still reads in the order things were declared.
 */
export function mergeByKey<T>(lists: ReadonlyArray<readonly T[]>, key: (item: T) => string | number): T[] {
  const merged = new Map<string | number, T>();
  for (const list of lists) for (const item of list) merged.set(key(item), item);
  return [...merged.values()];
}
