// Durations use Go-style unit suffixes because that is what Docker/compose health checks use,
// so existing habits carry over ("10s", "1m30s"). A bare number is refused: "10" could mean
// seconds or milliseconds and guessing wrong makes a health check fire 1000x too often.
import { invalid } from './invalid';

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 };
const UNIT_ORDER = ['h', 'm', 's', 'ms'];
const REMEDY = 'write a number with a unit (h, m, s, ms), largest unit first, e.g. 500ms, 10s, 2m, 1h or 1m30s';

/** Parses "500ms", "10s", "2m", "1h", "1m30s" into milliseconds. "0" alone is zero. */
export function parseDuration(spec: string): number {
  const text = spec.trim();
  if (text === '') throw invalid('duration', spec, 'is empty', REMEDY);
  if (text === '0') return 0;
  if (text.startsWith('-')) throw invalid('duration', spec, 'must not be negative', REMEDY);
  if (/^\d+(\.\d+)?$/.test(text)) throw invalid('duration', spec, 'has no unit', REMEDY);
  const part = /(\d+(?:\.\d+)?)(ms|h|m|s)/y;
  let total = 0;
  let lastRank = -1;
  while (part.lastIndex < text.length) {
    const at = part.lastIndex;
    const m = part.exec(text);
    if (!m) throw invalid('duration', spec, `cannot read "${text.slice(at)}"`, REMEDY);
    const rank = UNIT_ORDER.indexOf(m[2]);
    if (rank <= lastRank) throw invalid('duration', spec, `unit "${m[2]}" is repeated or out of order`, REMEDY);
    lastRank = rank;
    total += Number(m[1]) * UNIT_MS[m[2]];
  }
  // Decimal fractions are not exact in binary ("1.1s" is 1100.0000000000002 ms), so compare
  // against the nearest integer with a tolerance far below one millisecond.
  const ms = Math.round(total);
  if (Math.abs(total - ms) > 1e-6) throw invalid('duration', spec, 'is not a whole number of milliseconds', REMEDY);
  if (!Number.isSafeInteger(ms)) throw invalid('duration', spec, 'is too large', REMEDY);
  return ms;
}
