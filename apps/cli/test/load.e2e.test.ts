// Many runs at once (issue 16 item 6), as a CI system starts them: 60 identical `machine run --
// echo rN` on a host with a few cores, early starts on. Each must print its own line and exit 0,
// with nothing on stderr, and the boot snapshot they share must survive the crowd (a restore
// that runs out of time on a starved host is no reason to drop it). One round; the bound is the
// test's time limit, generous for TCG. Figures (N = 10, 30, 60, with and without early starts):
// tools/bench/load.ts.
import fs from 'node:fs';
import path from 'node:path';
import { e2eSetup, smolvm, smolvmAsync, type E2eSetup } from './helpers';

jest.setTimeout(540_000);

const N = 60;
const RUN = ['machine', 'run', '--cpus', '1', '--memory', '256', '--'];

let setup: E2eSetup;

beforeAll(async () => {
  setup = await e2eSetup('smolvm-load-e2e-');
});

afterAll(async () => {
  await setup.close();
});

it(`${N} concurrent runs all succeed with their own output, and the snapshot survives`, async () => {
  // The first run saves the boot snapshot and leaves the early-start recipe the others use.
  const first = smolvm([...RUN, 'echo', 'first'], setup.env, undefined, 300_000);
  expect([first.status, first.stdout, first.stderr]).toEqual([0, 'first\n', '']);
  const snapRoot = path.join(setup.home, 'cache', 'vmsnap');
  const snapshots = () => fs.readdirSync(snapRoot).filter((n) => !n.startsWith('.'));
  const before = snapshots();
  expect(before).toHaveLength(1);

  const results = await Promise.all(
    Array.from({ length: N }, (_, i) => smolvmAsync([...RUN, 'echo', `r${i}`], setup.env)),
  );
  const wrong = results
    .map((r, i) => ({ i, ...r }))
    .filter((r) => r.status !== 0 || r.stdout !== `r${r.i}\n` || r.stderr !== '');
  expect(wrong).toEqual([]);
  expect(snapshots()).toEqual(before);
  expect(setup.qemus()).toEqual([]);
  const runRoot = path.join(setup.runtimeDir, 'smolvm');
  expect(fs.existsSync(runRoot) ? fs.readdirSync(runRoot) : []).toEqual([]);
});
