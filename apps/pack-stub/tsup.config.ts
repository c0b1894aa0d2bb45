import path from 'node:path';
import { defineConfig } from 'tsup';
import { asciiOnly, sharedBuiltins } from '../../tools/bundle';

// One CommonJS file, dist/stub.js, that `pack create` copies next to each payload (and dist/stub-sea.js,
// the single executable's loader of it, src/sea.ts). Everything is
// bundled (no dynamic requires of our code); native modules the host libs load on demand stay
// external, and their users fall back without them (koffi: TCG-only probe, no console trimming).
// Built as the CLI's bundles are (tools/bundle.ts): one copy of each built-in's exports, ASCII only.
export default defineConfig({
  entry: { stub: 'src/main.ts', 'stub-sea': 'src/sea.ts' },
  format: ['cjs'],
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: false,
  minify: false,
  noExternal: [/.*/],
  external: ['koffi', 'ssh2', 'cpu-features'],
  removeNodeProtocol: false,
  esbuildPlugins: [sharedBuiltins()],
  onSuccess: async () => asciiOnly(path.join(__dirname, 'dist', 'stub.js')),
});
