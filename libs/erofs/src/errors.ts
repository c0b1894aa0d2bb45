// Typed failures of the erofs writer. Everything a caller can act on is a UsageError (bad input) or a
// SmolvmError (I/O); both come from @smolvm/common so the CLI prints them as one line.
import { UsageError, type SmolvmErrorOptions } from '@smolvm/common';

/** A layer's bytes are not a tar we accept (corrupt, truncated, malicious or unsupported). */
export class InvalidLayerError extends UsageError {
  readonly layerIndex?: number;
  readonly entryPath?: string;

  constructor(
    message: string,
    where: { layerIndex?: number; entryPath?: string } = {},
    options: SmolvmErrorOptions = {},
  ) {
    const parts: string[] = [];
    if (where.layerIndex !== undefined) parts.push(`layer ${where.layerIndex}`);
    if (where.entryPath !== undefined) parts.push(`entry '${where.entryPath}'`);
    super(parts.length ? `${parts.join(', ')}: ${message}` : message, {
      remedy:
        options.remedy ??
        'the image layer is corrupt or uses an unsupported tar feature; re-pull the image or rebuild it with a standard tool',
      cause: options.cause,
    });
    this.layerIndex = where.layerIndex;
    this.entryPath = where.entryPath;
  }
}

/**
 * Raised by the tree and tar code without context; the caller that knows the layer and entry wraps it.
 * Not exported from the package: callers only ever see InvalidLayerError or UsageError.
 */
export class EntryProblem extends Error {}
