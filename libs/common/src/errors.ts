// Typed errors that carry a remedy, so every failure reaches the user as one line:
// what failed and why (message), and what to do about it (remedy).

/** Process exit codes used by every smolvm command. */
export const ExitCode = {
  Ok: 0,
  Runtime: 1,
  Usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface SmolvmErrorOptions {
  /** What the user can do about it, phrased as an instruction. */
  remedy?: string;
  cause?: unknown;
}

export class SmolvmError extends Error {
  readonly remedy?: string;
  readonly exitCode: number = ExitCode.Runtime;

  constructor(message: string, options: SmolvmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.remedy = options.remedy;
  }
}

/** The user asked for something malformed: bad flag, bad value, bad file. Exit code 2. */
export class UsageError extends SmolvmError {
  override readonly exitCode: number = ExitCode.Usage;
}

/** A configuration file (Smolfile, registries file) is invalid. Carries file:line and key path. */
export class ConfigError extends UsageError {
  readonly file?: string;
  readonly line?: number;
  readonly keyPath?: string;

  constructor(
    message: string,
    where: { file?: string; line?: number; keyPath?: string } = {},
    options: SmolvmErrorOptions = {},
  ) {
    const location = [
      where.file && (where.line ? `${where.file}:${where.line}` : where.file),
      where.keyPath && `'${where.keyPath}'`,
    ]
      .filter(Boolean)
      .join(': ');
    super(location ? `${location}: ${message}` : message, options);
    this.file = where.file;
    this.line = where.line;
    this.keyPath = where.keyPath;
  }
}

/** Something named does not exist (machine, image, file). */
export class NotFoundError extends SmolvmError {}

/** The request conflicts with current state (name taken, machine running, lock held). */
export class ConflictError extends SmolvmError {}

/** Renders any thrown value as the single line the CLI prints. */
export function formatError(err: unknown): string {
  if (err instanceof SmolvmError) {
    return err.remedy ? `error: ${err.message}; ${err.remedy}` : `error: ${err.message}`;
  }
  if (err instanceof Error) return `error: ${err.message}`;
  return `error: ${String(err)}`;
}

/** Exit code for any thrown value: typed errors choose, everything else is a runtime error. */
export function exitCodeOf(err: unknown): number {
  return err instanceof SmolvmError ? err.exitCode : ExitCode.Runtime;
}

/**
 * A `.fail()` handler for a yargs parser: errors thrown by command handlers pass through
 * untouched; yargs' own messages (unknown option, missing argument) become one-line usage errors
 * that point at `help()`'s `--help`. `help` is called only on failure.
 */
export function usageFailure(help: () => string): (message: string, error: Error | undefined) => never {
  return (message, error) => {
    if (error) throw error;
    throw new UsageError(message.replace(/\n+/g, ' ').trim(), { remedy: `see '${help()} --help'` });
  };
}

/** Sets process.exitCode from a program's main(); a rejection is printed as one line. */
export function exitWhenSettled(run: Promise<number>): void {
  run.then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(formatError(err) + '\n');
      process.exitCode = exitCodeOf(err);
    },
  );
}
