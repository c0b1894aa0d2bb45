import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'tsup';
import { asciiOnly, sharedBuiltins } from '../../tools/bundle';
// CommonJS files. smolvm.js (src/bin.ts, the executable; its hashbang comes from the source)
// is a small loader that runs smolvm-main.js through a V8 code cache. smolvm-main.js is the CLI:
// command handlers are lazily initialised modules inside it, so `--help` only evaluates the
// command table. smolvm-prestart.js (src/prestart.ts) is what the loader runs before the CLI for
// `machine run` only (early restores). smolvm-exec.js (src/exec-fast.ts) is the whole of a plain
// `machine exec`: the loader runs it instead of the CLI, smolvm-start.js (src/start-fast.ts) likewise
// for a plain `machine start`; smolvm-supervise.js (src/supervise-fast.ts)
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
    'smolvm-start': 'src/start-fast.ts',
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
    for (const bundle of ['smolvm-main.js', 'smolvm-serve.js', 'smolvm-start.js'])
      asciiOnly(path.join(__dirname, 'dist', bundle));
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
