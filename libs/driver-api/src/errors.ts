// Typed failures of the driver layer. Each carries a remedy so the CLI can print one useful line.
import { SmolvmError, UsageError, type SmolvmErrorOptions } from '@smolvm/common';

/** The chosen driver cannot run VMs on this host (probe said so, or start found out). */
export class DriverUnavailableError extends SmolvmError {
  readonly driver: string;

  constructor(driver: string, reason: string, options: SmolvmErrorOptions = {}) {
    super(`driver '${driver}' is not usable on this host: ${reason}`, options);
    this.driver = driver;
  }
}

/** --driver / Smolfile / SMOLVM_DRIVER named a driver nobody registered. */
export class UnknownDriverError extends UsageError {
  readonly driver: string;

  constructor(driver: string, known: readonly string[], source?: string) {
    const from = source ? ` (from ${source})` : '';
    super(`unknown driver '${driver}'${from}`, {
      remedy: known.length ? `use one of: ${known.join(', ')}` : 'this build has no drivers registered',
    });
    this.driver = driver;
  }
}

/** Nothing on this host can run a VM; `reasons` has one entry per registered driver. */
export class NoUsableDriverError extends SmolvmError {
  readonly reasons: ReadonlyArray<{ driver: string; reason: string; remedy?: string }>;

  constructor(reasons: ReadonlyArray<{ driver: string; reason: string; remedy?: string }>) {
    const summary = reasons.map((r) => `${r.driver}: ${r.reason}`).join('; ');
    super(`no VM driver is usable on this host (${summary || 'no drivers registered'})`, {
      remedy: reasons.find((r) => r.remedy)?.remedy ?? 'run tools/setup',
    });
    this.reasons = reasons;
  }
}

/** The spec cannot be run as given: the field path says which value is wrong. */
export class InvalidVmSpecError extends UsageError {
  readonly field: string;

  constructor(field: string, problem: string, options: SmolvmErrorOptions = {}) {
    super(`invalid VM spec: ${field}: ${problem}`, options);
    this.field = field;
  }
}

/** A snapshot could not be saved or restored: damaged, made by another hypervisor build, or the wrong shape. */
export class SnapshotError extends SmolvmError {
  constructor(message: string, options: SmolvmErrorOptions = {}) {
    super(message, {
      remedy: options.remedy ?? 'start the VM with a cold boot (machine run --cold); the snapshot is rebuilt',
      cause: options.cause,
    });
  }
}

/**
 * A restore that did not finish in time. On a host starved of CPU that says nothing about the
 * snapshot, so callers keep it (dropping it sends every later start into a cold boot and a save).
 */
export class SnapshotTimeoutError extends SnapshotError {}

/**
 * A VM started early for a restore (a driver's prestart) is not the one the restore needs, or
 * failed before it was needed. It has been ended; the caller restores the usual way.
 */
export class PrestartMismatchError extends SmolvmError {}

export interface VmStartErrorDetails {
  /** Last lines of the guest console log (may be empty: the guest never ran). */
  consoleTail?: string[];
  /** Last lines the hypervisor printed on stderr. */
  hypervisorOutput?: string[];
  consoleLog?: string;
}

/** The hypervisor refused the spec or died before the guest ran. No process is left behind. */
export class VmStartError extends SmolvmError {
  readonly consoleTail: string[];
  readonly hypervisorOutput: string[];
  readonly consoleLog?: string;

  constructor(summary: string, details: VmStartErrorDetails = {}, options: SmolvmErrorOptions = {}) {
    const hypervisorOutput = details.hypervisorOutput ?? [];
    const consoleTail = details.consoleTail ?? [];
    // The CLI prints one line: keep the most telling line of each source in it.
    const lastOutput = lastNonEmpty(hypervisorOutput);
    const lastConsole = lastNonEmpty(consoleTail);
    let message = `VM failed to start: ${summary}`;
    if (lastOutput) message += `: ${lastOutput}`;
    if (lastConsole) message += ` (console: ${lastConsole})`;
    super(message, {
      remedy: options.remedy ?? (details.consoleLog ? `see the console log ${details.consoleLog}` : undefined),
      cause: options.cause,
    });
    this.consoleTail = consoleTail;
    this.hypervisorOutput = hypervisorOutput;
    this.consoleLog = details.consoleLog;
  }

  /** Everything known, several lines: for --verbose output and test failures. */
  describe(): string {
    const parts = [this.message];
    if (this.hypervisorOutput.length) parts.push('hypervisor output:', ...this.hypervisorOutput.map((l) => `  ${l}`));
    if (this.consoleTail.length) parts.push('console tail:', ...this.consoleTail.map((l) => `  ${l}`));
    return parts.join('\n');
  }
}

function lastNonEmpty(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (line) return line;
  }
  return undefined;
}
