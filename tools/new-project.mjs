#!/usr/bin/env node
// Scaffolds a lib or app with the files every project here has:
//   node tools/new-project.mjs lib NAME "one-line purpose"
//   node tools/new-project.mjs app NAME "one-line purpose"
// and registers the @smolvm/NAME path alias for libs.
import fs from 'node:fs';
import path from 'node:path';

const [kind, name, purpose] = process.argv.slice(2);
if (!['lib', 'app'].includes(kind) || !/^[a-z][a-z0-9-]*$/.test(name ?? '') || !purpose) {
  console.error('usage: node tools/new-project.mjs lib|app NAME "purpose"   (NAME: lowercase, digits, dashes)');
  process.exit(2);
}
const root = path.resolve(import.meta.dirname, '..');
const dir = path.join(root, kind === 'lib' ? 'libs' : 'apps', name);
if (fs.existsSync(path.join(dir, 'package.json'))) {
  console.error(`${path.relative(root, dir)} already exists: pick another name or edit it`);
  process.exit(1);
}
// Module boundaries (eslint.config.mjs): drivers may import driver-support libs (qemu, a driver
// kit), which only drivers import; every other lib is core and sees drivers through driver-api.
const libScope = (lib) =>
  lib === 'driver-kit' ? 'scope:driver-support' : /^driver-(?!api$)/.test(lib) ? 'scope:driver' : 'scope:core';
const write = (rel, text) => {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!fs.existsSync(file)) fs.writeFileSync(file, text);
};
write(
  'package.json',
  JSON.stringify(
    {
      name: `@smolvm/${name}`,
      version: '0.1.0',
      private: true,
      description: purpose,
      nx: { name, tags: kind === 'app' ? ['type:app'] : ['type:lib', libScope(name)] },
      main: 'dist/index.js',
      types: 'src/index.ts',
      scripts: {
        build: 'tsup',
        test: 'node ../../tools/jest-watchdog.mjs',
        lint: 'eslint src',
        typecheck: 'tsc -p tsconfig.json --noEmit',
      },
    },
    null,
    2,
  ) + '\n',
);
write(
  'tsconfig.json',
  JSON.stringify(
    {
      extends: '../../tsconfig.base.json',
      include: ['src/**/*.ts', 'test/**/*.ts'],
    },
    null,
    2,
  ) + '\n',
);
write('jest.config.js', `module.exports = { ...require('../../jest.preset.js'), displayName: '${name}' };\n`);
write(
  'tsup.config.ts',
  kind === 'lib'
    ? "// The shared library build: see tools/tsup-lib.config.ts.\nexport { default } from '../../tools/tsup-lib.config';\n"
    : `import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['cjs'],
  target: 'node20',
  clean: true,
  sourcemap: true,
});
`,
);
write('README.md', `# @smolvm/${name}\n\n${purpose}\n`);
write('src/index.ts', `// Public API of @smolvm/${name}: ${purpose}\nexport {};\n`);

if (kind === 'lib') {
  const tsconfigPath = path.join(root, 'tsconfig.base.json');
  const tsconfig = JSON.parse(fs.readFileSync(tsconfigPath, 'utf8'));
  tsconfig.compilerOptions.paths[`@smolvm/${name}`] = [`libs/${name}/src/index.ts`];
  fs.writeFileSync(tsconfigPath, JSON.stringify(tsconfig, null, 2) + '\n');
}
console.log(`created ${path.relative(root, dir)}; run npm install to link it into the workspace`);
