// "Did you mean" support: a misspelt key is far more common than an intentionally unknown one.

/** Optimal-string-alignment distance: swapped neighbours ("imgae") count as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** Folds case and separators so `sshAgent`, `ssh-agent` and `SSH_AGENT` all match `ssh_agent`. */
function fold(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, '');
}

/**
 * The candidate closest to `input`, or undefined when nothing is close enough to be a plausible
 * typo (at most a third of the word may differ, so short words do not match everything).
 */
export function closestMatch(input: string, candidates: readonly string[]): string | undefined {
  const folded = fold(input);
  const exactFold = candidates.find((c) => fold(c) === folded);
  if (exactFold !== undefined) return exactFold;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(folded, fold(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const budget = Math.max(1, Math.floor(Math.max(folded.length, 3) / 3));
  return bestDistance <= budget ? best : undefined;
}
