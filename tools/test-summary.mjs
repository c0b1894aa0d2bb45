#!/usr/bin/env node
// Adds up every project's .test-results/summary.json (written by tools/jest-summary-reporter.js)
// and prints the suite's closing line. Exits 1 when a test or a suite failed or nothing ran.
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const totals = { passed: 0, failed: 0, skipped: 0, suitesFailed: 0 };
const projects = [];
for (const group of ['apps', 'libs']) {
  const groupDir = path.join(root, group);
  if (!fs.existsSync(groupDir)) continue;
  for (const name of fs.readdirSync(groupDir).sort()) {
    const file = path.join(groupDir, name, '.test-results', 'summary.json');
    if (!fs.existsSync(file)) continue;
    const summary = JSON.parse(fs.readFileSync(file, 'utf8'));
    for (const key of Object.keys(totals)) totals[key] += summary[key] ?? 0;
    projects.push(`${group}/${name}: ${summary.passed} passed, ${summary.failed} failed`);
  }
}
for (const line of projects) console.log(`  ${line}`);
console.log(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
if (totals.failed > 0 || totals.suitesFailed > 0 || totals.passed === 0) process.exit(1);
