// Collects spawn -> ready times from the conformance suite and prints their median: informational
// only (CONTRIBUTING: no timing assertions).
export function timingCollector(label: string): { onTiming(name: string, ms: number): void } {
  const samples: number[] = [];
  afterAll(() => {
    if (!samples.length) return;
    const sorted = [...samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(
      `${label}: spawn -> ready median ${Math.round(median)} ms over ${samples.length} boots (${sorted.map(Math.round).join(', ')})`,
    );
  });
  return { onTiming: (_name, ms) => samples.push(ms) };
}
