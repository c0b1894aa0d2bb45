// smol-toml returns plain values without positions, so error messages would lose file:line.
// This scanner re-reads the (already syntax-checked) source and records where every key,
// table header and array element starts. It only has to understand TOML's structure, not its
// values, which keeps it small.
import { formatKeyPath, type KeyPath } from './key-path';

interface Entry {
  line: number;
  /** Source text of a scalar value, to tell `2` from `2.0` (smol-toml returns both as 2). */
  raw?: string;
}

export class KeyLocator {
  private readonly entries = new Map<string, Entry>();
  private readonly lineStarts: number[] = [0];
  private pos = 0;

  constructor(private readonly src: string) {
    for (let i = 0; i < src.length; i++) if (src[i] === '\n') this.lineStarts.push(i + 1);
    try {
      this.scanDocument();
    } catch {
      // A scanner bug must never hide the real validation error; lines degrade to the nearest
      // recorded ancestor instead.
    }
  }

  /** Line of `path`, or of its nearest recorded ancestor; undefined if none is known. */
  line(path: KeyPath): number | undefined {
    for (let n = path.length; n > 0; n--) {
      const entry = this.entries.get(formatKeyPath(path.slice(0, n)));
      if (entry) return entry.line;
    }
    return undefined;
  }

  raw(path: KeyPath): string | undefined {
    return this.entries.get(formatKeyPath(path))?.raw;
  }

  private lineAt(pos: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  private record(path: KeyPath, pos: number, raw?: string): void {
    const key = formatKeyPath(path);
    const entry = this.entries.get(key);
    if (!entry) this.entries.set(key, { line: this.lineAt(pos), raw });
    else if (raw !== undefined) entry.raw = raw;
  }

  private skipSpaces(): void {
    while (this.src[this.pos] === ' ' || this.src[this.pos] === '\t') this.pos++;
  }

  /** Skips whitespace, newlines and comments. */
  private skipBlank(): void {
    while (this.pos < this.src.length) {
      const c = this.src[this.pos];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') this.pos++;
      else if (c === '#') while (this.pos < this.src.length && this.src[this.pos] !== '\n') this.pos++;
      else break;
    }
  }

  private scanDocument(): void {
    let table: Array<string | number> = [];
    const arrayTableCounts = new Map<string, number>();
    while (true) {
      this.skipBlank();
      if (this.pos >= this.src.length) return;
      const start = this.pos;
      if (this.src[this.pos] === '[') {
        const isArrayTable = this.src[this.pos + 1] === '[';
        this.pos += isArrayTable ? 2 : 1;
        const key = this.readKey();
        this.pos += isArrayTable ? 2 : 1;
        this.recordPrefixes(key, start);
        if (isArrayTable) {
          const name = formatKeyPath(key);
          const index = arrayTableCounts.get(name) ?? 0;
          arrayTableCounts.set(name, index + 1);
          table = [...key, index];
          this.record(table, start);
        } else {
          table = key;
        }
      } else {
        const key = [...table, ...this.readKey()];
        this.recordPrefixes(key, start);
        this.skipSpaces();
        this.pos++; // '='
        this.skipSpaces();
        this.readValue(key);
      }
      while (this.pos < this.src.length && this.src[this.pos] !== '\n') this.pos++;
      if (this.pos === start) this.pos++;
    }
  }

  private recordPrefixes(path: KeyPath, pos: number): void {
    for (let n = 1; n <= path.length; n++) this.record(path.slice(0, n), pos);
  }

  private readKey(): string[] {
    const parts: string[] = [];
    while (true) {
      this.skipSpaces();
      const c = this.src[this.pos];
      if (c === '"' || c === "'") {
        const start = this.pos;
        this.skipString();
        const quoted = this.src.slice(start, this.pos);
        parts.push(c === "'" ? quoted.slice(1, -1) : unescapeBasic(quoted));
      } else {
        const m = /^[A-Za-z0-9_-]+/.exec(this.src.slice(this.pos, this.pos + 256));
        parts.push(m ? m[0] : '');
        this.pos += m ? m[0].length : 0;
      }
      this.skipSpaces();
      if (this.src[this.pos] !== '.') return parts;
      this.pos++;
    }
  }

  private readValue(path: KeyPath): void {
    const c = this.src[this.pos];
    if (c === '[') {
      this.pos++;
      for (let i = 0; ; i++) {
        this.skipBlank();
        if (this.src[this.pos] === ']' || this.pos >= this.src.length) break;
        this.record([...path, i], this.pos);
        this.readValue([...path, i]);
        this.skipBlank();
        if (this.src[this.pos] === ',') this.pos++;
      }
      this.pos++;
    } else if (c === '{') {
      this.pos++;
      while (true) {
        this.skipBlank();
        if (this.src[this.pos] === '}' || this.pos >= this.src.length) break;
        const start = this.pos;
        const key = [...path, ...this.readKey()];
        this.recordPrefixes(key, start);
        this.skipSpaces();
        this.pos++; // '='
        this.skipSpaces();
        this.readValue(key);
        this.skipBlank();
        if (this.src[this.pos] === ',') this.pos++;
      }
      this.pos++;
    } else if (c === '"' || c === "'") {
      this.skipString();
    } else {
      const m = /^[^,\]}#\r\n]*/.exec(this.src.slice(this.pos, this.pos + 1024));
      const raw = m ? m[0].trimEnd() : '';
      this.record(path, this.pos, raw);
      this.pos += raw.length;
    }
  }

  /** Skips a basic, literal or multi-line string starting at the quote. */
  private skipString(): void {
    const q = this.src[this.pos];
    const triple = this.src.startsWith(q.repeat(3), this.pos);
    this.pos += triple ? 3 : 1;
    while (this.pos < this.src.length) {
      const c = this.src[this.pos];
      if (c === '\\' && q === '"') {
        this.pos += 2;
      } else if (triple && this.src.startsWith(q.repeat(3), this.pos)) {
        this.pos += 3;
        // A closing delimiter may be followed by up to two more quotes that belong to the content.
        while (this.src[this.pos] === q) this.pos++;
        return;
      } else if (!triple && c === q) {
        this.pos++;
        return;
      } else {
        this.pos++;
      }
    }
  }
}

function unescapeBasic(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted.slice(1, -1);
  }
}
