import { defineConfig } from 'tsup';
// One CommonJS file: command handlers are lazily initialised modules inside it, so `--help`
// only evaluates the command table. Native modules stay external.
export default defineConfig({
  entry: { smolvm: 'src/main.ts' },
  format: ['cjs'],
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: true,
  minify: false,
  noExternal: [/.*/],
  external: ['koffi', 'ssh2', 'cpu-features'],
  banner: { js: '#!/usr/bin/env node' },
});
