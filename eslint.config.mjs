import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// Who may import whom (docs/architecture.md#layout). Tags live in each project's package.json
// ("nx": {"tags"}); tools/project.json tags the tooling. Every constraint matching a project applies.
// onlyDependOnLibsWithTags checks direct imports only, which is what is meant here: an app may
// import a driver, which imports qemu (notDependOnLibsWithTags would follow that chain).
const depConstraints = [
  // Apps are leaves: they import libs, never another app; nothing else may import an app.
  // They import drivers (for effect: drivers register themselves) but never reach into qemu.
  { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['scope:core', 'scope:driver', 'scope:registry'] },
  { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
  { sourceTag: 'type:tools', onlyDependOnLibsWithTags: ['type:lib'] },
  // Hypervisor details stay behind the driver contract: runtime and every other core lib see
  // drivers only through driver-api and its registry.
  { sourceTag: 'scope:core', onlyDependOnLibsWithTags: ['scope:core'] },
  { sourceTag: 'scope:driver-support', onlyDependOnLibsWithTags: ['scope:core', 'scope:driver-support'] },
  { sourceTag: 'scope:driver', onlyDependOnLibsWithTags: ['scope:core', 'scope:driver-support'] },
  // libs/drivers: the one list of built-in drivers (a new driver is one line there).
  { sourceTag: 'scope:registry', onlyDependOnLibsWithTags: ['scope:core', 'scope:driver'] },
];
// Test code may share fixtures (tools/fixtures) and another project's test helpers.
const TEST_IMPORTS = ['tools/fixtures/', '/test/helpers'];
const boundaries = ({ allow = [], constraints = depConstraints } = {}) => [
  'error',
  {
    allow,
    depConstraints: constraints,
    // Libs import tools/ only for their build config and test fixtures, and tools import libs: a
    // cycle through tools is no cycle between the libs.
    ignoredCircularDependencies: [['tools', 'tag:type:lib']],
    // A test may import its own lib by its public name, as users do.
    allowCircularSelfDependency: true,
    // The CLI loads handlers lazily for start-up time; a lib imported lazily in one place may be
    // imported statically in another (Nx's check is about bundler code splitting, not this).
    checkDynamicDependenciesExceptions: ['.*'],
  },
];

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/coverage/**', '.nx/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...nx.configs['flat/base'],
  { files: ['**/*.ts', '**/*.js', '**/*.mjs', '**/*.cjs'], rules: { '@nx/enforce-module-boundaries': boundaries() } },
  { files: ['**/test/**'], rules: { '@nx/enforce-module-boundaries': boundaries({ allow: TEST_IMPORTS }) } },
  {
    // Benchmarks measure libraries' internals and reuse their test helpers; tools' jest config the root preset.
    files: ['tools/**'],
    rules: {
      '@nx/enforce-module-boundaries': boundaries({
        allow: [...TEST_IMPORTS, '^\\.\\./\\.\\./libs/', '^\\.\\./jest\\.preset\\.js$'],
      }),
    },
  },
  // Known violations, each to be removed by the change that fixes it (issue 18). Keep this list short.
  {
    // A local-users test forges a QEMU early-start recipe, which only libs/qemu knows the shape of.
    files: ['apps/cli/test/adversarial/localusers-prestart.test.ts'],
    rules: {
      '@nx/enforce-module-boundaries': boundaries({
        allow: ['^@smolvm/qemu(/prestart)?$', '^@smolvm/driver-kit$', ...TEST_IMPORTS],
      }),
    },
  },
  {
    // A CLI test answers DNS with netpolicy's internal codec: export it from netpolicy or test it there.
    files: ['apps/cli/test/net.e2e.test.ts'],
    rules: { '@nx/enforce-module-boundaries': boundaries({ allow: ['libs/netpolicy/src/dns$', ...TEST_IMPORTS] }) },
  },
  {
    // The packed executable runs the CLI's pack and exec code, and its loader (launch.ts), from its
    // sources: that code belongs in a lib.
    files: ['apps/pack-stub/src/main.ts', 'apps/pack-stub/src/sea.ts'],
    rules: { '@nx/enforce-module-boundaries': boundaries({ allow: ['^\\.\\./\\.\\./cli/src/'] }) },
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        process: 'readonly',
        console: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // Last: turns off the stylistic rules Prettier owns (`npm run format`).
  prettier,
  // Prettier wraps code but not comments: comments keep to its width too (long strings may not).
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs', '**/*.cjs'],
    rules: { 'max-len': ['error', { code: 10000, comments: 120, ignoreUrls: true }] },
  },
);
