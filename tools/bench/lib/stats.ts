// Shared helpers for benchmark scripts: repeated runs, medians, ratios, one readable report.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** The checkout's root (set by tools/run-ts.mjs, which runs scripts from a temp bundle). */
export const WORKSPACE = process.env.SMOLVM_WORKSPACE ?? path.resolve(__dirname, '../../..');

export function median(values: number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))];
}

/** Wall time of one command, in milliseconds; throws if it fails (a failed run is no sample). */
export function timeCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) {
    throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr.toString().trim()}`);
  }
  return elapsed;
}

export interface Series {
  label: string;
  samples: number[];
}

/** Interleaves the cases run by run, so drift of the machine hits every case alike. */
export function runInterleaved(cases: Array<{ label: string; run: () => number }>, runs: number, warmup = 1): Series[] {
  for (let i = 0; i < warmup; i++) for (const c of cases) c.run();
  const series = cases.map((c) => ({ label: c.label, samples: [] as number[] }));
  for (let i = 0; i < runs; i++) cases.forEach((c, j) => series[j].samples.push(c.run()));
  return series;
}

export function report(title: string, series: Series[], unit = 'ms', baseline = series[0]): void {
  const base = median(baseline.samples);
  console.log(`\n${title}`);
  const width = Math.max(...series.map((s) => s.label.length));
  for (const s of series) {
    const m = median(s.samples);
    const line = [
      s.label.padEnd(width),
      `median ${m.toFixed(1)} ${unit}`,
      `p10 ${quantile(s.samples, 0.1).toFixed(1)}`,
      `p90 ${quantile(s.samples, 0.9).toFixed(1)}`,
      `n=${s.samples.length}`,
      s === baseline ? '(baseline)' : `ratio ${(m / base).toFixed(2)}x of ${baseline.label}`,
    ];
    console.log('  ' + line.join('  '));
  }
}
