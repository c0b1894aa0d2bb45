// Which xattrs an erofs image can carry, and in which order they are written.
import { EntryProblem } from './errors';
import { splitXattrName, xattrBodySize, xattrBodySizeFromIcount, type XattrName } from './format';

const MAX_VALUE = 0xffff;
const MAX_BODY = xattrBodySizeFromIcount(0xffff);

export interface SanitizedXattrs {
  xattrs: Map<string, Buffer>;
  /** Names erofs has no encoding for (namespaces other than user/trusted/security/POSIX ACLs) or too long. */
  dropped: string[];
}

/**
 * Keeps the xattrs erofs can store. Unstorable names are dropped (and reported) rather than failing the
 * build, matching how extraction as an ordinary tool on Linux would have lost them too.
 */
export function sanitizeXattrs(input: Iterable<[string, Uint8Array]>): SanitizedXattrs {
  const xattrs = new Map<string, Buffer>();
  const dropped: string[] = [];
  for (const [name, value] of input) {
    if (!splitXattrName(name) || value.length > MAX_VALUE) {
      dropped.push(name);
      continue;
    }
    xattrs.set(name, Buffer.from(value));
  }
  if (xattrBodySize(sortedXattrs(xattrs)) > MAX_BODY) throw new EntryProblem('xattrs too large for one inode');
  return { xattrs, dropped };
}

/** Entries in a stable order (prefix index, then suffix bytes) so identical inputs give identical images. */
export function sortedXattrs(xattrs: ReadonlyMap<string, Buffer>): Array<{ name: XattrName; value: Buffer }> {
  const out: Array<{ name: XattrName; value: Buffer }> = [];
  for (const [full, value] of xattrs) {
    const name = splitXattrName(full);
    if (name) out.push({ name, value });
  }
  out.sort((a, b) => a.name.index - b.name.index || Buffer.compare(a.name.suffix, b.name.suffix));
  return out;
}

export function xattrSizeOf(xattrs: ReadonlyMap<string, Buffer>): number {
  return xattrBodySize(sortedXattrs(xattrs));
}
