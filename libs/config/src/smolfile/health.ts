// [health]: the check `machine monitor` runs. Only exec is required; timings have defaults.
import {
  DEFAULT_HEALTH_INTERVAL_MS,
  DEFAULT_HEALTH_RETRIES,
  DEFAULT_HEALTH_STARTUP_GRACE_MS,
  DEFAULT_HEALTH_TIMEOUT_MS,
  MAX_HEALTH_DURATION_MS,
  MAX_HEALTH_RETRIES,
} from '../defaults';
import { parseDuration } from '../duration';
import type { KeyPath } from './key-path';
import type { Reader, TomlTable, TomlValue } from './reader';
import { unknownKey } from './schema';
import type { HealthCheck } from './types';

function healthDuration(r: Reader, path: KeyPath, value: TomlValue, allowZero: boolean): number {
  const ms = r.parse(path, () => parseDuration(r.string(path, value)));
  if (ms === 0 && !allowZero) throw r.error(path, 'must be longer than zero', 'write a positive duration, e.g. "10s"');
  if (ms > MAX_HEALTH_DURATION_MS) throw r.error(path, 'must be at most 24h', 'write a shorter duration, e.g. "30s"');
  return ms;
}

export function readHealth(r: Reader, table: TomlTable): HealthCheck {
  let exec: string[] | undefined;
  let intervalMs = DEFAULT_HEALTH_INTERVAL_MS;
  let timeoutMs: number | undefined;
  let retries = DEFAULT_HEALTH_RETRIES;
  let startupGraceMs = DEFAULT_HEALTH_STARTUP_GRACE_MS;
  for (const [key, value] of Object.entries(table)) {
    const p = ['health', key];
    switch (key) {
      case 'exec':
        exec = r.argv(p, value);
        break;
      case 'interval':
        intervalMs = healthDuration(r, p, value, false);
        break;
      case 'timeout':
        timeoutMs = healthDuration(r, p, value, false);
        break;
      case 'retries':
        retries = r.integer(p, value);
        if (retries < 1 || retries > MAX_HEALTH_RETRIES) {
          throw r.error(
            p,
            `must be between 1 and ${MAX_HEALTH_RETRIES}, got ${retries}`,
            'write the number of consecutive failures that mark the VM unhealthy, e.g. 3',
          );
        }
        break;
      case 'startup_grace':
        startupGraceMs = healthDuration(r, p, value, true);
        break;
      default:
        throw unknownKey(r, 'health', key, value);
    }
  }
  if (exec === undefined) {
    throw r.error(
      ['health'],
      "missing required key 'exec'",
      'add the check command, e.g. exec = ["curl", "-f", "http://127.0.0.1:8080/health"]',
    );
  }
  if (timeoutMs !== undefined && timeoutMs > intervalMs) {
    // Overlapping checks would pile up on a slow guest exactly when it is least healthy.
    throw r.error(
      ['health', 'timeout'],
      `timeout (${timeoutMs} ms) is longer than interval (${intervalMs} ms)`,
      'lower timeout or raise interval',
    );
  }
  return {
    exec,
    intervalMs,
    timeoutMs: timeoutMs ?? Math.min(DEFAULT_HEALTH_TIMEOUT_MS, intervalMs),
    retries,
    startupGraceMs,
  };
}
