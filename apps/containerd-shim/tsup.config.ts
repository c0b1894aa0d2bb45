import fs from 'node:fs';
import path from 'node:path';
import { defineConfig } from 'tsup';

// Two CommonJS files: dist/containerd-shim-smolvm-v2.js (src/main.ts, run by
// bin/containerd-shim-smolvm-v2) is a light launcher; dist/containerd-shim-smolvm-v2-server.js
// (src/server.ts) the shim itself, loaded only by the process that serves or deletes.
// The .proto files stay in proto/ (read at start, from beside dist/); the guest agent is copied
// to dist/guest/agent.js, which the runtime builds the agent image from. koffi stays external.
export default defineConfig({
  entry: { 'containerd-shim-smolvm-v2': 'src/main.ts', 'containerd-shim-smolvm-v2-server': 'src/server.ts' },
  format: ['cjs'],
  target: 'node20',
  platform: 'node',
  clean: true,
  sourcemap: true,
  minify: false,
  noExternal: [/.*/],
  external: ['koffi', 'ssh2', 'cpu-features'],
  onSuccess: async () => {
    fs.mkdirSync(path.join(__dirname, 'dist', 'guest'), { recursive: true });
    fs.copyFileSync(
      path.join(__dirname, '../guest-agent/dist/agent.js'),
      path.join(__dirname, 'dist', 'guest', 'agent.js'),
    );
  },
});
