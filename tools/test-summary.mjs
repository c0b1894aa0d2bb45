#!/usr/bin/env node
// Adds up every project's .test-results/summary.json (written by tools/jest-summary-reporter.js)
// and prints the suite's closing line. Exits 1 when a test or a suite failed or nothing ran.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const totals = { passed: 0, failed: 0, skipped: 0, suitesFailed: 0 };
const projects = [];
const watchdog = [];
// Every project with tests: apps/*, libs/*, and tools itself.
const projectDirs = ['apps', 'libs'].flatMap((group) => {
  const groupDir = path.join(root, group);
  return fs.existsSync(groupDir)
    ? fs
        .readdirSync(groupDir)
        .sort()
        .map((name) => `${group}/${name}`)
    : [];
});
projectDirs.push('tools');
for (const project of projectDirs) {
  const file = path.join(root, project, '.test-results', 'summary.json');
  if (!fs.existsSync(file)) continue;
  const summary = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const key of Object.keys(totals)) totals[key] += summary[key] ?? 0;
  projects.push(`${project}: ${summary.passed} passed, ${summary.failed} failed`);
  if (summary.watchdog) watchdog.push(`${project}: ${summary.watchdog}`);
}
for (const line of projects) console.log(`  ${line}`);
for (const line of watchdog) console.log(`  watchdog: ${line}`);
const seconds = Number(process.env.SMOLVM_SUITE_SECONDS);
if (Number.isFinite(seconds) && seconds > 0)
  console.log(`  the suite took ${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`);
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
if (totals.failed > 0 || totals.suitesFailed > 0 || totals.passed === 0) process.exit(1);
