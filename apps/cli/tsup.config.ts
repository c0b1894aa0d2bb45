import fs from 'node:fs';
import path from 'node:path';
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
  // The guest agent travels with the CLI: the runtime builds the agent image from this copy.
  onSuccess: async () => {
    fs.mkdirSync(path.join(__dirname, 'dist', 'guest'), { recursive: true });
    fs.copyFileSync(path.join(__dirname, '../guest-agent/dist/agent.js'), path.join(__dirname, 'dist', 'guest', 'agent.js'));
  },
});
