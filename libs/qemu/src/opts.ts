// QEMU option strings (`-device a=1,b=2`): a comma inside a value must be doubled, and nothing
// on a command line may carry control characters. Every value we put in an option goes through
// here, so a path can never smuggle in an extra option.
import { InvalidVmSpecError } from '@smolvm/driver-api';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;

/** One option value, escaped for QEMU's option parsers (QemuOpts and keyval agree on `,,`). */
export function optValue(value: string | number | boolean, field = 'value'): string {
  const text = typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value);
  if (CONTROL.test(text)) throw new InvalidVmSpecError(field, `${JSON.stringify(text)} contains control characters`);
  return text.replace(/,/g, ',,');
}

export type OptProps = Record<string, string | number | boolean | undefined>;

/** `head,key=value,...` with escaped values; undefined properties are left out. */
export function opts(head: string, props: OptProps, field?: string): string {
  const parts = [head];
  for (const [key, value] of Object.entries(props)) {
    if (value !== undefined) parts.push(`${key}=${optValue(value, field ? `${field}.${key}` : key)}`);
  }
  return parts.join(',');
}

/** Arguments QEMU takes verbatim (-kernel, -initrd, -append): checked, never escaped. */
export function rawArg(value: string, field: string): string {
  if (CONTROL.test(value)) throw new InvalidVmSpecError(field, `${JSON.stringify(value)} contains control characters`);
  return value;
}
