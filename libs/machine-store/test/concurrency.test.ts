// 20 processes create, delete and update overlapping names in one store at once. Afterwards the
// store must be exactly what the successful operations imply, and at no moment may a reader see
// half a machine.
import fs from 'node:fs';
import path from 'node:path';
import { MachineStore, type SkippedEntry } from '../src';
import { bundleFixture, startChild, tempDir } from './helpers';
import type { OpResult } from './fixtures/store-child';

const CHILDREN = 20;
const OPS_PER_CHILD = 25;
const NAMES = ['alpha', 'beta', 'gamma', 'delta.1', 'eps_2'];

let work: string;
let childScript: string;

beforeAll(() => {
  work = tempDir('conc');
  childScript = bundleFixture('store-child', work);
}, 30_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

it('concurrent create / delete / update from 20 processes loses nothing and tears nothing', async () => {
  const root = path.join(work, 'machines');
  const store = new MachineStore({ root });
  const goFile = path.join(work, 'go');
  const children = Array.from({ length: CHILDREN }, (_, i) =>
    startChild(childScript, [root, String(i), String(OPS_PER_CHILD), NAMES.join(','), goFile]),
  );
  await Promise.all(children.map((c) => c.waitForLine(/^ready$/, 20_000)));

  // A reader running alongside: it must only ever see complete machines.
  const badSightings: SkippedEntry[] = [];
  let listings = 0;
  let running = true;
  const reader = (async () => {
    while (running) {
      for (const s of store.list().skipped) if (s.reason !== 'in-progress') badSightings.push(s);
      listings++;
      await new Promise((r) => setTimeout(r, 3));
    }
  })();

  fs.writeFileSync(goFile, '');
  const codes = await Promise.all(children.map((c) => c.exited));
  running = false;
  await reader;

  expect(children.map((c) => c.stderr()).filter(Boolean)).toEqual([]);
  expect(codes).toEqual(children.map(() => 0));
  expect(badSightings).toEqual([]);
  expect(listings).toBeGreaterThan(5);

  const results: OpResult[] = children.flatMap((c) =>
    c.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as OpResult),
  );
  expect(results).toHaveLength(CHILDREN * OPS_PER_CHILD);
  const okCount = (op: OpResult['op']): number => results.filter((r) => r.op === op && r.ok).length;
  // The mix must have exercised every path, or the checks below prove little.
  expect(okCount('create')).toBeGreaterThan(20);
  expect(okCount('delete')).toBeGreaterThan(10);
  expect(okCount('update')).toBeGreaterThan(10);
  expect(results.some((r) => r.op === 'create' && !r.ok)).toBe(true);

  // Nothing half-done is left: no temp or trash directories, no locks or lock staging.
  expect(fs.readdirSync(root).filter((e) => e.startsWith('.') && e !== '.locks')).toEqual([]);
  expect(fs.readdirSync(path.join(root, '.locks'))).toEqual([]);
  const listing = store.list();
  expect(listing.skipped).toEqual([]);

  // Every record on disk is complete, valid JSON of the current schema.
  for (const m of listing.machines) {
    const text = fs.readFileSync(path.join(root, m.name, 'machine.json'), 'utf8');
    expect(JSON.parse(text)).toEqual(m);
  }

  // Per name, a create succeeds only when absent and a delete only when present, so the records
  // created minus the records deleted must be exactly what exists now.
  const updatesPerId = new Map<string, number>();
  for (const r of results)
    if (r.op === 'update' && r.ok) updatesPerId.set(r.id as string, (updatesPerId.get(r.id as string) ?? 0) + 1);
  for (const name of NAMES) {
    const created = results.filter((r) => r.name === name && r.op === 'create' && r.ok).map((r) => r.id as string);
    const deleted = results.filter((r) => r.name === name && r.op === 'delete' && r.ok);
    expect(new Set(created).size).toBe(created.length);
    const deletedIds = deleted.map((r) => r.id as string);
    expect(new Set(deletedIds).size).toBe(deletedIds.length);
    for (const id of deletedIds) expect(created).toContain(id);
    const remaining = created.filter((id) => !deletedIds.includes(id));
    const onDisk = listing.machines.find((m) => m.name === name);
    expect(onDisk?.id ? [onDisk.id] : []).toEqual(remaining);
    // No lost updates: each record carries every increment reported against it.
    for (const d of deleted) expect(d.cpus).toBe(1 + (updatesPerId.get(d.id as string) ?? 0));
    if (onDisk) expect(onDisk.cpus).toBe(1 + (updatesPerId.get(onDisk.id) ?? 0));
  }
  // Updates were only ever reported against records that were created.
  const allCreated = new Set(results.filter((r) => r.op === 'create' && r.ok).map((r) => r.id));
  for (const id of updatesPerId.keys()) expect(allCreated.has(id)).toBe(true);
}, 60_000);
