// Keeps <project>/.test-results/progress.json up to date while jest runs: which test files are
// running since when, the counts so far, and when the run completed. tools/jest-watchdog.mjs reads
// it from outside jest to name a file that hangs, or to notice jest not exiting after its run.
//
// Jest runs in band on small machines (one worker), so test files run in this process: after
// each file the reporter notes which kinds of handle it left open (timers, sockets, servers,
// child processes). Those files are the suspects when jest later fails to exit.
const fs = require('node:fs');
const path = require('node:path');

function countResources() {
  const counts = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

class ProgressReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
    this.file = path.join(this.rootDir, '.test-results', 'progress.json');
    this.state = {
      pid: process.pid,
      running: {},
      finished: 0,
      passed: 0,
      failed: 0,
      skipped: 0,
      leftOpen: {},
      completedAt: null,
    };
    this.resources = countResources();
  }

  onRunStart() {
    this.resources = countResources();
    this.baseline = this.resources;
    this.write();
  }

  onTestFileStart(test) {
    this.state.running[this.relative(test.path)] = Date.now();
    this.write();
  }

  onTestFileResult(test, result) {
    const file = this.relative(test.path);
    delete this.state.running[file];
    this.state.finished += 1;
    this.state.passed += result.numPassingTests;
    this.state.failed += result.numFailingTests;
    this.state.skipped += result.numPendingTests + result.numTodoTests;
    const now = countResources();
    const added = Object.keys(now).filter((kind) => now[kind] > (this.resources[kind] ?? 0));
    if (added.length > 0) this.state.leftOpen[file] = added;
    this.resources = now;
    this.write();
  }

  onRunComplete() {
    // Only what is still open now can keep jest from exiting.
    const now = countResources();
    const baseline = this.baseline ?? {};
    const open = Object.keys(now).filter((kind) => now[kind] > (baseline[kind] ?? 0));
    for (const [file, kinds] of Object.entries(this.state.leftOpen)) {
      const still = kinds.filter((kind) => open.includes(kind));
      if (still.length > 0) this.state.leftOpen[file] = still;
      else delete this.state.leftOpen[file];
    }
    this.state.completedAt = Date.now();
    this.write();
  }

  relative(file) {
    return path.relative(this.rootDir, file);
  }

  write() {
    // Written whole and renamed: the watchdog never reads half a file.
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.state) + '\n');
    fs.renameSync(tmp, this.file);
  }
}

module.exports = ProgressReporter;
