// WWW-Authenticate (RFC 7235): one header may carry several challenges, each a scheme followed
// by comma-separated parameters whose values may be quoted and contain commas themselves.
export interface AuthChallenge {
  /** Lower-cased: "bearer", "basic". */
  scheme: string;
  /** Parameter names lower-cased; values unquoted. */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  skipSeparators(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos++;
  }

  token(): string {
    const start = this.pos;
    while (!this.done && TOKEN_CHAR.test(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  quoted(): string {
    this.pos++; // opening quote
    let out = '';
    while (!this.done && this.peek() !== '"') {
      if (this.peek() === '\\' && this.pos + 1 < this.text.length) this.pos++;
      out += this.peek();
      this.pos++;
    }
    this.pos++; // closing quote (or past the end of an unterminated one)
    return out;
  }
}

/** Tries to read `name=value`; leaves the scanner untouched when the next item is not one. */
function readParam(s: Scanner): [string, string] | undefined {
  const start = s.pos;
  s.skipSpaces();
  const name = s.token();
  s.skipSpaces();
  if (name === '' || s.peek() !== '=') {
    s.pos = start;
    return undefined;
  }
  s.pos++;
  s.skipSpaces();
  const value = s.peek() === '"' ? s.quoted() : s.token();
  return [name.toLowerCase(), value];
}

export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  if (header === undefined) return [];
  const headers = Array.isArray(header) ? header : [header];
  const challenges: AuthChallenge[] = [];
  for (const text of headers) {
    const s = new Scanner(text);
    while (true) {
      s.skipSeparators();
      const scheme = s.token();
      if (scheme === '') break;
      const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: {} };
      challenges.push(challenge);
      while (true) {
        const param = readParam(s);
        if (!param) break;
        challenge.params[param[0]] = param[1];
        s.skipSpaces();
        if (s.peek() !== ',') break;
        // After a comma comes either another parameter or the next challenge's scheme.
        const afterComma = s.pos + 1;
        s.pos = afterComma;
        s.skipSeparators();
        const probe = s.pos;
        if (!readParam(s)) {
          s.pos = probe;
          break;
        }
        s.pos = probe;
      }
      // Skip anything unparseable (a token68) up to the next challenge.
      if (!s.done && s.peek() !== ',' && !TOKEN_CHAR.test(s.peek())) s.pos++;
    }
  }
  return challenges;
}
