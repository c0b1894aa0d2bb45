import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { defineConfig, type Options } from 'tsup';

type EsbuildPlugin = NonNullable<Options['esbuildPlugins']>[number];
// Four CommonJS files. smolvm.js (src/bin.ts, the executable; its hashbang comes from the source)
// is a small loader that runs smolvm-main.js through a V8 code cache. smolvm-main.js is the CLI:
// command handlers are lazily initialised modules inside it, so `--help` only evaluates the
// command table. smolvm-prestart.js (src/prestart.ts) is what the loader runs before the CLI for
// `machine run` only (early restores). smolvm-exec.js (src/exec-fast.ts) is the whole of a plain
// `machine exec`: the loader runs it instead of the CLI; smolvm-supervise.js (src/supervise-fast.ts)
// likewise for a machine's supervisor. smolvm-serve.js is `smolvm serve` (fastify
// and the API routes), required by that command only. smolvm-sea.js (src/sea.ts) is the
// single-file smolvm's main script (tools/sea/build.ts embeds it with smolvm-main.js and
// smolvm-serve.js as assets). Native modules stay external.
export default defineConfig({
  entry: {
    smolvm: 'src/bin.ts',
    'smolvm-main': 'src/main.ts',
    'smolvm-prestart': 'src/prestart.ts',
    'smolvm-exec': 'src/exec-fast.ts',
    'smolvm-supervise': 'src/supervise-fast.ts',
    'smolvm-sea': 'src/sea.ts',
    'smolvm-serve': 'src/commands/serve/serve.handler.ts',
  },
  format: ['cjs'],
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: true,
  minify: false,
  noExternal: [/.*/],
  external: ['koffi', 'ssh2', 'cpu-features'],
  // tsup's own node: handling would resolve those imports before sharedBuiltins sees them.
  removeNodeProtocol: false,
  esbuildPlugins: [sharedBuiltins()],
  onSuccess: async () => {
    asciiOnly(path.join(__dirname, 'dist', 'smolvm-main.js'));
    // The guest agent travels with the CLI: the runtime builds the agent image from this copy.
    fs.mkdirSync(path.join(__dirname, 'dist', 'guest'), { recursive: true });
    fs.copyFileSync(
      path.join(__dirname, '../guest-agent/dist/agent.js'),
      path.join(__dirname, 'dist', 'guest', 'agent.js'),
    );
    // The packed executable's stub: `pack create` copies it next to each payload (src/stub.ts).
    fs.mkdirSync(path.join(__dirname, 'dist', 'stub'), { recursive: true });
    fs.copyFileSync(path.join(__dirname, '../pack-stub/dist/stub.js'), path.join(__dirname, 'dist', 'stub', 'stub.js'));
  },
});

/**
 * esbuild escapes every non-ASCII character in code, but copies comments (undici's) as they are.
 * A few such characters make Node decode the 2 MB bundle as UTF-8 into a two-byte string (~6 ms
 * slower per start than the one-byte latin1 path the loader takes for ASCII). In comments they
 * can be anything: each UTF-16 unit becomes '?', so columns, and the source map, stay exact.
 */
function asciiOnly(file: string): void {
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
function sharedBuiltins(): EsbuildPlugin {
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
