/** A path into the TOML document: table keys and array indexes. */
export type KeyPath = ReadonlyArray<string | number>;

const BARE_KEY = /^[A-Za-z0-9_-]+$/;

/** Renders a path the way users write it: `dev.ports[1]`, quoting keys that are not bare. */
export function formatKeyPath(path: KeyPath): string {
  return path
    .map((seg, i) => {
      if (typeof seg === 'number') return `[${seg}]`;
      const key = BARE_KEY.test(seg) ? seg : JSON.stringify(seg);
      return i === 0 ? key : `.${key}`;
    })
    .join('');
}
