import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, NotFoundError, UsageError } from '@smolvm/common';
import { parse, TomlError } from 'smol-toml';
import { KeyLocator } from './key-locator';
import { Reader } from './reader';
import type { Smolfile } from './types';
import { validateSmolfile } from './validate';

export interface ParseSmolfileOptions {
  /** Directory that relative [dev] volume host paths resolve against. Default: dirname(file). */
  baseDir?: string;
}

/**
 * Parses and fully validates Smolfile text. `file` is only used in messages and, unless
 * `baseDir` is given, to locate relative host paths. Throws ConfigError with file:line.
 */
export function parseSmolfile(text: string, file = 'Smolfile', options: ParseSmolfileOptions = {}): Smolfile {
  // Editors on Windows like to prepend a BOM, which TOML rejects as a stray character.
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;
  let doc;
  try {
    doc = parse(source, { unsafeKeyBehaviour: 'throw' });
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    const reason = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
    throw new ConfigError(
      `invalid TOML at column ${err.column}: ${reason}`,
      { file, line: err.line },
      {
        remedy: 'fix the syntax on that line (a Smolfile is TOML: https://toml.io)',
        cause: err,
      },
    );
  }
  const baseDir = options.baseDir ?? path.dirname(path.resolve(file));
  return validateSmolfile(doc, new Reader(file, new KeyLocator(source)), baseDir);
}

/** Reads and validates a Smolfile. A directory means the file named "Smolfile" inside it. */
export function loadSmolfile(filePath: string): Smolfile {
  let target = filePath;
  let text: string;
  try {
    if (fs.statSync(target).isDirectory()) target = path.join(target, 'Smolfile');
    text = fs.readFileSync(target, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new NotFoundError(`Smolfile ${JSON.stringify(target)} does not exist`, {
        remedy: 'check the path passed to --smolfile/-s',
        cause: err,
      });
    }
    if (code === 'EACCES' || code === 'EISDIR') {
      throw new UsageError(
        `cannot read Smolfile ${JSON.stringify(target)}: ${code === 'EACCES' ? 'permission denied' : 'is a directory'}`,
        {
          remedy: 'pass a readable Smolfile to --smolfile/-s',
          cause: err,
        },
      );
    }
    throw err;
  }
  return parseSmolfile(text, target, { baseDir: path.dirname(path.resolve(target)) });
}
