#!/usr/bin/env node
// Runs a project's jest (every project's `test` script) under a watchdog, so a hang costs minutes
// and names its culprit instead of running into CI's limit:
//   - a test file running longer than SMOLVM_TEST_FILE_LIMIT_S (default 600) is named and jest
//     is killed;
//   - jest still alive SMOLVM_TEST_EXIT_GRACE_S (default 60) after its run completed (a handle a
//     test left open) is named with the files that left handles open, and killed.
// Either way the project fails: its .test-results/summary.json records the failure and why, and
// tools/test-summary.mjs repeats it in the suite's closing lines.
// Usage (from a project directory): node ../../tools/jest-watchdog.mjs [jest arguments...]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { clearInterval, setInterval, setTimeout } from 'node:timers';

const root = path.resolve(import.meta.dirname, '..');
const projectDir = process.cwd();
const project = path.relative(root, projectDir) || '.';
const fileLimitS = positive('SMOLVM_TEST_FILE_LIMIT_S', 600);
const exitGraceS = positive('SMOLVM_TEST_EXIT_GRACE_S', 60);
const resultsDir = path.join(projectDir, '.test-results');
const progressFile = path.join(resultsDir, 'progress.json');
const summaryFile = path.join(resultsDir, 'summary.json');

function positive(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(
      `watchdog: ${name}=${raw} is not a positive number of seconds; unset it or set e.g. ${name}=${fallback}`,
    );
    process.exit(2);
  }
  return value;
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

fs.rmSync(progressFile, { force: true });
fs.rmSync(summaryFile, { force: true });
const jestBin = createRequire(path.join(projectDir, 'package.json')).resolve('jest/bin/jest');
// Its own process group: the watchdog can end jest with every process it started.
const child = spawn(process.execPath, [jestBin, ...process.argv.slice(2)], { stdio: 'inherit', detached: true });

let failure;
const killGroup = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => killGroup(signal));

const timer = setInterval(() => {
  const progress = readJson(progressFile);
  if (!progress || failure) return;
  const now = Date.now();
  const overdue = Object.entries(progress.running ?? {}).filter(([, since]) => now - since > fileLimitS * 1000);
  if (overdue.length > 0) {
    const files = overdue
      .map(([file, since]) => `${file} (running for ${Math.round((now - since) / 1000)} s)`)
      .join(', ');
    fail(
      progress,
      `${files} exceeded the ${fileLimitS} s limit of one test file (SMOLVM_TEST_FILE_LIMIT_S): a test hangs; jest was killed`,
    );
  } else if (progress.completedAt && now - progress.completedAt > exitGraceS * 1000) {
    const suspects = Object.entries(progress.leftOpen ?? {}).map(([file, kinds]) => `${file} (${kinds.join(', ')})`);
    const who = suspects.length > 0 ? `left open by ${suspects.join(', ')}` : 'left open by a test';
    fail(
      progress,
      `jest did not exit ${exitGraceS} s after its tests finished: a handle ${who} keeps it alive; jest was killed ` +
        `(find it with: cd ${project} && npx jest --detectOpenHandles)`,
    );
  }
}, 1_000);

function fail(progress, reason) {
  failure = reason;
  console.error(`\nwatchdog: ${project}: ${reason}`);
  killGroup('SIGTERM');
  setTimeout(() => killGroup('SIGKILL'), 5_000).unref();
  // What jest did not get to write: the counts so far plus this failure.
  const summary = readJson(summaryFile) ?? {
    passed: progress.passed ?? 0,
    failed: progress.failed ?? 0,
    skipped: progress.skipped ?? 0,
    suitesFailed: 0,
  };
  // Counted as a failed test too, so the suite's closing line does not read "0 failed".
  summary.failed = (summary.failed ?? 0) + 1;
  summary.suitesFailed = (summary.suitesFailed ?? 0) + 1;
  summary.watchdog = reason;
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(summaryFile, JSON.stringify(summary) + '\n');
}

child.on('exit', (code, signal) => {
  clearInterval(timer);
  // Whatever jest started in its group goes with it.
  killGroup('SIGKILL');
  if (failure) process.exit(1);
  if (signal) {
    console.error(`watchdog: ${project}: jest was killed by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
