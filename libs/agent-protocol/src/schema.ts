// Hand-written readers for untrusted JSON: every field is checked for type and range before
// anything else looks at it. A failure names the offending field.

import { isJsonObject } from '@smolvm/common';

export class SchemaError extends Error {}

export type Json = Record<string, unknown>;

export const isObject: (value: unknown) => value is Json = isJsonObject;

/** Typed access to the fields of one JSON object; `where` prefixes error messages. */
export class Fields {
  constructor(
    private readonly value: Json,
    private readonly where: string,
  ) {}

  static of(value: unknown, where: string): Fields {
    if (!isObject(value)) throw new SchemaError(`${where}: expected an object`);
    return new Fields(value, where);
  }

  has(name: string): boolean {
    return this.value[name] !== undefined && this.value[name] !== null;
  }

  int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.value[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new SchemaError(`${this.where}.${name}: expected an integer in [${min}, ${max}]`);
    }
    return v;
  }

  optInt(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    return this.has(name) ? this.int(name, min, max) : undefined;
  }

  /** An integer, or null when absent or null. */
  intOrNull(name: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number | null {
    return this.has(name) ? this.int(name, min, max) : null;
  }

  number(name: string): number {
    const v = this.value[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new SchemaError(`${this.where}.${name}: expected a finite number`);
    return v;
  }

  str(name: string, maxLength = 4096): string {
    const v = this.value[name];
    if (typeof v !== 'string' || v.length > maxLength) {
      throw new SchemaError(`${this.where}.${name}: expected a string of at most ${maxLength} characters`);
    }
    return v;
  }

  optStr(name: string, maxLength = 4096): string | undefined {
    return this.has(name) ? this.str(name, maxLength) : undefined;
  }

  strOrNull(name: string, maxLength = 4096): string | null {
    return this.has(name) ? this.str(name, maxLength) : null;
  }

  bool(name: string): boolean {
    const v = this.value[name];
    if (typeof v !== 'boolean') throw new SchemaError(`${this.where}.${name}: expected true or false`);
    return v;
  }

  optBool(name: string): boolean | undefined {
    return this.has(name) ? this.bool(name) : undefined;
  }

  literal<T extends string>(name: string, allowed: readonly T[]): T {
    const v = this.str(name, 64);
    if (!(allowed as readonly string[]).includes(v)) throw new SchemaError(`${this.where}.${name}: expected one of ${allowed.join(', ')}`);
    return v as T;
  }

  strArray(name: string, maxItems = 4096, maxLength = 131072): string[] {
    const v = this.value[name];
    if (!Array.isArray(v) || v.length > maxItems) throw new SchemaError(`${this.where}.${name}: expected an array of at most ${maxItems} strings`);
    return v.map((item, i) => {
      if (typeof item !== 'string' || item.length > maxLength) throw new SchemaError(`${this.where}.${name}[${i}]: expected a string`);
      return item;
    });
  }

  obj(name: string): Fields {
    return Fields.of(this.value[name], `${this.where}.${name}`);
  }

  optObj(name: string): Fields | undefined {
    return this.has(name) ? this.obj(name) : undefined;
  }

  array(name: string, maxItems = 1024): Fields[] {
    const v = this.value[name];
    if (!Array.isArray(v) || v.length > maxItems) throw new SchemaError(`${this.where}.${name}: expected an array of at most ${maxItems} objects`);
    return v.map((item, i) => Fields.of(item, `${this.where}.${name}[${i}]`));
  }

  optArray(name: string, maxItems = 1024): Fields[] {
    return this.has(name) ? this.array(name, maxItems) : [];
  }

  /** A string-to-string map (environment variables). */
  strMap(name: string, maxEntries = 4096): Record<string, string> {
    const o = this.obj(name).raw;
    const entries = Object.entries(o);
    if (entries.length > maxEntries) throw new SchemaError(`${this.where}.${name}: more than ${maxEntries} entries`);
    const out: Record<string, string> = {};
    for (const [k, v] of entries) {
      if (typeof v !== 'string') throw new SchemaError(`${this.where}.${name}.${k}: expected a string`);
      out[k] = v;
    }
    return out;
  }

  get raw(): Json {
    return this.value;
  }
}
