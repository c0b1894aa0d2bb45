import { UsageError } from '@smolvm/common';

/**
 * Every value parser reports failures the same way: what was rejected (quoted exactly, so
 * invisible characters show), why, and how to write it instead. The remedy never names a CLI
 * flag because the same parsers validate Smolfile values.
 */
export function invalid(kind: string, input: string, why: string, remedy: string): UsageError {
  return new UsageError(`invalid ${kind} ${JSON.stringify(input)}: ${why}`, { remedy });
}
