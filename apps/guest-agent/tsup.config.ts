import { defineConfig } from 'tsup';

// One CommonJS file that is copied into the agent image and can also be a V8 startup snapshot
// entry. koffi stays external: its native module ships beside the bundle in the image.
export default defineConfig({
  entry: { agent: 'src/main.ts' },
  format: ['cjs'],
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: false,
  minify: false,
  noExternal: [/.*/],
  external: ['koffi'],
});
