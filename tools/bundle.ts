// What the apps' bundles (tsup.config.ts of apps/cli and apps/pack-stub) share: both are loaded
// on every start of a command, so their start-up cost is paid per command.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import type { Options } from 'tsup';

type EsbuildPlugin = NonNullable<Options['esbuildPlugins']>[number];

/**
 * esbuild escapes every non-ASCII character in code, but copies comments (undici's) as they are.
 * A few such characters make Node decode the 2 MB bundle as UTF-8 into a two-byte string (~6 ms
 * slower per start than the one-byte latin1 path the loader takes for ASCII). In comments they
 * can be anything: each UTF-16 unit becomes '?', so columns, and the source map, stay exact.
 */
export function asciiOnly(file: string): void {
  const text = fs.readFileSync(file, 'utf8');
  // eslint-disable-next-line no-control-regex
  const ascii = text.replace(/[^\x00-\x7f]/g, '?');
  if (ascii !== text) fs.writeFileSync(file, ascii);
}

/**
 * esbuild compiles `import fs from 'node:fs'` to `__toESM(require('node:fs'))` in every module
 * that says it: a fresh object with a getter for each of fs's properties, every time (`machine ls`
 * made 111 such copies, ~6,200 getters, 12-20 ms). Routing the import statements for a built-in
 * through one ESM module per built-in copies it once. require() calls keep the real module
 * object (CommonJS code may patch it).
 */
export function sharedBuiltins(): EsbuildPlugin {
  const builtins = new Set(builtinModules);
  return {
    name: 'shared-builtins',
    setup(build) {
      build.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
        const name = args.path.replace(/^node:/, '');
        if (!builtins.has(name)) return undefined;
        if (args.namespace === 'shared-builtin') return { path: `node:${name}`, external: true };
        if (args.kind !== 'import-statement') return undefined;
        return { path: name, namespace: 'shared-builtin' };
      });
      build.onLoad({ filter: /.*/, namespace: 'shared-builtin' }, (args) => ({
        contents: `export * from 'node:${args.path}';\nexport { default } from 'node:${args.path}';\n`,
        loader: 'js',
      }));
    },
  };
}
