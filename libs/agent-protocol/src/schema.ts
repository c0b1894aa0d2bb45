// Readers for untrusted agent messages: @smolvm/common's JsonReader, failing with a SchemaError
// that names the offending field.
import { JsonReader, isJsonObject, type JsonReaderOptions } from '@smolvm/common';

export class SchemaError extends Error {}

export type Json = Record<string, unknown>;

const OPTIONS: JsonReaderOptions = { fail: (path, expected) => new SchemaError(`${path}: expected ${expected}`) };

/** Typed access to the fields of one JSON object; `where` prefixes error messages. */
export class Fields extends JsonReader {
  constructor(value: Json, where: string) {
    super(value, where, OPTIONS);
  }

  static override of(value: unknown, where: string): Fields {
    if (!isJsonObject(value)) throw new SchemaError(`${where}: expected an object`);
    return new Fields(value, where);
  }
}
