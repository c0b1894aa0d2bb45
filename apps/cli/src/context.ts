// Options every command understands, and the streams handlers write to.
export interface GlobalArgs {
  debug: boolean;
  quiet: boolean;
}

export interface JsonArgs {
  json: boolean;
}
