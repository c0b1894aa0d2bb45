// Is this process a single executable application, and what does it carry?
import Module from 'node:module';

interface NodeSea {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: string): string;
}

let sea: NodeSea | null | undefined;

function nodeSea(): NodeSea | null {
  if (sea === undefined) {
    try {
      // Not `import`: node:sea exists from Node 20.12 on, and a plain node run must not need it.
      sea = Module.createRequire(__filename)('node:sea') as NodeSea;
    } catch {
      sea = null;
    }
  }
  return sea;
}

/** True in a single executable built by tools/sea/build.ts (then process.execPath is that file). */
export function isSingleExecutable(): boolean {
  const s = nodeSea();
  return s !== null && s.isSea();
}

/** An embedded asset's bytes; throws if this is not a single executable or it has no such asset. */
export function readAsset(key: string): Buffer {
  const s = nodeSea();
  if (!s?.isSea()) throw new Error(`not a single executable: no asset ${key}`);
  return Buffer.from(s.getAsset(key));
}

/** An embedded asset as text. */
export function readAssetText(key: string): string {
  return readAsset(key).toString('utf8');
}
