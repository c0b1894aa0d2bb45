// Module boundaries (eslint.config.mjs, docs/architecture.md#layout): lint must fail when code
// crosses one, and every project must carry the tags the rules are written in.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

interface Probe {
  file: string; // where the probe pretends to live (never written)
  code: string;
}

// Lints the probes as if they were files of the workspace, in one ESLint process (it reads the Nx
// project graph once), and returns each probe's @nx/enforce-module-boundaries messages.
function boundaryErrors(probes: Probe[]): string[][] {
  const script = `
    const { ESLint } = require('eslint');
    (async () => {
      const eslint = new ESLint({ cwd: process.cwd() });
      const out = [];
      for (const p of JSON.parse(process.argv[1])) {
        const [r] = await eslint.lintText(p.code, { filePath: p.file });
        out.push(r.messages.filter((m) => m.ruleId === '@nx/enforce-module-boundaries' || m.fatal).map((m) => m.message));
      }
      process.stdout.write(JSON.stringify(out));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['-e', script, JSON.stringify(probes)], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NX_DAEMON: 'false' },
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`eslint failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as string[][];
}

describe('module boundaries', () => {
  // Violations first, then the imports the same rules must allow (so a rule that refused
  // everything would fail here too).
  const cases: Array<{ name: string; probe: Probe; error: RegExp | null }> = [
    {
      name: 'runtime imports qemu',
      probe: {
        file: 'libs/runtime/src/boundary-probe.ts',
        code: "import { QemuVm } from '@smolvm/qemu';\nexport { QemuVm };\n",
      },
      error: /"scope:core" can only depend on libs tagged with "scope:core"/,
    },
    {
      name: 'runtime imports a concrete driver',
      probe: { file: 'libs/runtime/src/boundary-probe.ts', code: "import '@smolvm/driver-kvm';\n" },
      error: /"scope:core" can only depend on libs tagged with "scope:core"/,
    },
    {
      name: 'a lib imports an app',
      probe: { file: 'libs/machines/src/boundary-probe.ts', code: "import '@smolvm/cli';\n" },
      // Every app imports libs, so this is reported as the cycle it would make.
      error:
        /Circular dependency between "machines" and "cli"|"type:lib" can only depend on libs tagged with "type:lib"/,
    },
    {
      name: 'an app imports another app',
      probe: { file: 'apps/containerd-shim/src/boundary-probe.ts', code: "import '@smolvm/guest-agent';\n" },
      error: /"type:app" can only depend on libs tagged with/,
    },
    {
      name: 'an app reaches past the drivers into qemu',
      probe: {
        file: 'apps/containerd-shim/src/boundary-probe.ts',
        code: "import { QemuVm } from '@smolvm/qemu';\nexport { QemuVm };\n",
      },
      error: /"type:app" can only depend on libs tagged with/,
    },
    {
      name: "an app imports another project's sources by path",
      probe: { file: 'apps/containerd-shim/src/boundary-probe.ts', code: "import '../../../libs/runtime/src/vm';\n" },
      error: /cannot be imported by a relative or absolute path/,
    },
    {
      name: 'a driver imports another driver',
      probe: { file: 'libs/driver-hvf/src/boundary-probe.ts', code: "import '@smolvm/driver-kvm';\n" },
      error: /"scope:driver" can only depend on libs tagged with/,
    },
    {
      name: 'a driver imports qemu (allowed)',
      probe: {
        file: 'libs/driver-kvm/src/boundary-probe.ts',
        code: "import { QemuVm } from '@smolvm/qemu';\nexport { QemuVm };\n",
      },
      error: null,
    },
    {
      name: 'runtime imports the driver contract (allowed)',
      probe: {
        file: 'libs/runtime/src/boundary-probe.ts',
        code: "import { selectDriver } from '@smolvm/driver-api';\nexport { selectDriver };\n",
      },
      error: null,
    },
    {
      name: 'an app registers a driver (allowed)',
      probe: { file: 'apps/containerd-shim/src/boundary-probe.ts', code: "import '@smolvm/driver-kvm';\n" },
      error: null,
    },
  ];

  it('fails lint on each violation and passes the allowed imports', () => {
    const results = boundaryErrors(cases.map((c) => c.probe));
    const got = cases.map((c, i) => ({ name: c.name, errors: results[i] }));
    expect(got).toEqual(cases.map((c) => ({ name: c.name, errors: c.error ? [expect.stringMatching(c.error)] : [] })));
  });

  it('tags every project with its type, and every lib with its scope', () => {
    const untagged: string[] = [];
    for (const dir of ['apps', 'libs']) {
      for (const name of fs.readdirSync(path.join(root, dir))) {
        const file = path.join(root, dir, name, 'package.json');
        if (!fs.existsSync(file)) continue;
        const tags: string[] = JSON.parse(fs.readFileSync(file, 'utf8')).nx?.tags ?? [];
        const ok =
          dir === 'apps'
            ? tags.includes('type:app')
            : tags.includes('type:lib') &&
              tags.some((t) => ['scope:core', 'scope:driver', 'scope:driver-support', 'scope:registry'].includes(t));
        if (!ok) untagged.push(`${dir}/${name}: ${JSON.stringify(tags)}`);
      }
    }
    expect(untagged).toEqual([]);
  });
});
