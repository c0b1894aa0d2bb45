// The one reader for untrusted JSON (agent messages, machine.json, pack manifests): every field
// is checked for type and bound before anything else looks at it. A failure names the field's
// path and what it should have been; each caller words it and picks the error class.
import { isJsonObject } from './json';

/** Builds the error for a field that is not what it should be; `actual` is the value found. */
export type JsonFieldFailure = (path: string, expected: string, actual: unknown) => Error;

export interface JsonReaderOptions {
  fail: JsonFieldFailure;
  /** Refuse strings with a NUL character (text that ends up in C strings, file names, argv). */
  rejectNul?: boolean;
}

const MAX_STRING = 4096;

function intRange(min: number, max: number): string {
  if (max === Number.MAX_SAFE_INTEGER) return `an integer >= ${min}`;
  return `an integer from ${min} to ${max}`;
}

/** Typed access to the fields of one JSON object, at `where` (a path such as "setup.network"). */
export class JsonReader {
  constructor(
    private readonly value: Record<string, unknown>,
    readonly where: string,
    private readonly options: JsonReaderOptions,
  ) {}

  /** A reader for `value`, which must be an object. */
  static of(value: unknown, where: string, options: JsonReaderOptions): JsonReader {
    if (!isJsonObject(value)) throw options.fail(where, 'an object', value);
    return new JsonReader(value, where, options);
  }

  /** The path of field `key`, as error messages name it. */
  path(key: string): string {
    return this.where ? `${this.where}.${key}` : key;
  }

  private fail(key: string, expected: string): never {
    throw this.options.fail(this.path(key), expected, this.value[key]);
  }

  /** Absent and null both count as not there. */
  has(key: string): boolean {
    return this.value[key] !== undefined && this.value[key] !== null;
  }

  get raw(): Record<string, unknown> {
    return this.value;
  }

  /** The keys of this object that are not in `known`, as paths. */
  unknownKeys(known: readonly string[]): string[] {
    return Object.keys(this.value)
      .filter((k) => !known.includes(k))
      .map((k) => this.path(k));
  }

  int(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.value[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) this.fail(key, intRange(min, max));
    return v;
  }

  optInt(key: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.has(key) ? this.int(key, min, max) : undefined;
  }

  /** An integer, or null when absent or null (a value the writer could not know). */
  intOrNull(key: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | null {
    return this.has(key) ? this.int(key, min, max) : null;
  }

  number(key: string): number {
    const v = this.value[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a finite number');
    return v;
  }

  /** A string of `minLength` to `maxLength` characters. */
  str(key: string, maxLength = MAX_STRING, minLength = 0): string {
    const v = this.value[key];
    if (
      typeof v !== 'string' ||
      v.length > maxLength ||
      v.length < minLength ||
      (this.options.rejectNul && v.includes('\0'))
    ) {
      this.fail(key, `${minLength > 0 ? 'a non-empty string' : 'a string'} of at most ${maxLength} characters`);
    }
    return v;
  }

  optStr(key: string, maxLength = MAX_STRING, minLength = 0): string | undefined {
    return this.has(key) ? this.str(key, maxLength, minLength) : undefined;
  }

  strOrNull(key: string, maxLength = MAX_STRING): string | null {
    return this.has(key) ? this.str(key, maxLength) : null;
  }

  bool(key: string): boolean {
    const v = this.value[key];
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  optBool(key: string): boolean | undefined {
    return this.has(key) ? this.bool(key) : undefined;
  }

  literal<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.value[key];
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
      this.fail(key, `one of ${allowed.join(', ')}`);
    return v as T;
  }

  /**
   * A list of strings. `item` adds a check of each (say, KEY=VALUE); `expected` then says in
   * words what the list must be.
   */
  strArray(
    key: string,
    limits: { maxItems?: number; maxLength?: number; minLength?: number } = {},
    item?: (s: string) => boolean,
    expected?: string,
  ): string[] {
    const { maxItems = 4096, maxLength = 131072, minLength = 0 } = limits;
    const v = this.value[key];
    const ok = (s: unknown): s is string =>
      typeof s === 'string' &&
      s.length <= maxLength &&
      s.length >= minLength &&
      !(this.options.rejectNul && s.includes('\0')) &&
      (!item || item(s));
    if (!Array.isArray(v) || v.length > maxItems || !v.every(ok)) {
      this.fail(
        key,
        expected ??
          `a list of at most ${maxItems} ${minLength > 0 ? 'non-empty strings' : 'strings'} of at most ${maxLength} characters`,
      );
    }
    return [...v];
  }

  obj(key: string): JsonReader {
    return JsonReader.of(this.value[key], this.path(key), this.options);
  }

  optObj(key: string): JsonReader | undefined {
    return this.has(key) ? this.obj(key) : undefined;
  }

  /** A list of objects, each read on its own. */
  array(key: string, maxItems = 1024): JsonReader[] {
    const v = this.value[key];
    if (!Array.isArray(v) || v.length > maxItems) this.fail(key, `a list of at most ${maxItems} objects`);
    return v.map((item, i) => JsonReader.of(item, `${this.path(key)}[${i}]`, this.options));
  }

  /** The same; absent or null is an empty list. */
  optArray(key: string, maxItems = 1024): JsonReader[] {
    return this.has(key) ? this.array(key, maxItems) : [];
  }

  /** A string-to-string map (environment variables). */
  strMap(key: string, maxEntries = 4096): Record<string, string> {
    const entries = Object.entries(this.obj(key).raw);
    if (entries.length > maxEntries || !entries.every(([, v]) => typeof v === 'string')) {
      this.fail(key, `an object of at most ${maxEntries} string values`);
    }
    return Object.fromEntries(entries) as Record<string, string>;
  }
}
