import { defineConfig } from 'tsup';

// Every lib builds the same way: dist/index.js (CommonJS) from src/index.ts. Workspace libs and
// npm packages stay external, so two libs loaded side by side share one copy of a dependency
// (a bundled copy each would break `instanceof` on the shared error classes).
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['cjs'],
  target: 'node20',
  clean: true,
  sourcemap: true,
  skipNodeModulesBundle: true,
  // tsup bundles tsconfig path aliases by default; esbuild's own external list is checked first.
  esbuildOptions(options) {
    options.external = [...(options.external ?? []), '@smolvm/*'];
  },
});
