// The packed executable's stub, as `pack create` writes it next to a payload. Today it is the
// pack-stub bundle, run by Node (`node stub.js`, or directly through its hashbang); a build of the
// stub as a single executable replaces it by changing locateStubExecutable() alone.
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';

export interface StubExecutable {
  path: string;
  /** 'node-script': a CommonJS bundle Node runs; 'native': an executable file. */
  kind: 'node-script' | 'native';
}

export function locateStubExecutable(): StubExecutable {
  const bundle = path.join(__dirname, 'stub', 'stub.js');
  if (!fs.existsSync(bundle)) throw new NotFoundError(`the packed executable's stub is missing (${bundle})`, { remedy: 'rebuild smolvm: npx nx build cli' });
  return { path: bundle, kind: 'node-script' };
}

/** Ends the node-script stub's text in a --single-file executable; the payload follows (see stubPrefix). */
export const SCRIPT_END_MARKER = '\n//# smolvm-stub-end\n';

/**
 * The bytes that go before the payload. A native stub goes as it is. A script stub gets a
 * hashbang; for --single-file it becomes a shell + JavaScript file: sh runs the first lines, which
 * hand the file to Node with a loader that compiles only the script part (up to the marker),
 * since the payload after it is not JavaScript.
 */
export function stubPrefix(stub: StubExecutable, singleFile: boolean): Buffer {
  const body = fs.readFileSync(stub.path);
  if (stub.kind === 'native') return body;
  const script = body.toString('utf8').replace(/^#!.*\n/, '');
  if (!singleFile) return Buffer.from(`#!/usr/bin/env node\n${script}`);
  const loader = [
    "const fs=require('fs'),M=require('module'),f=process.argv[1];",
    "const b=fs.readFileSync(f),e=b.indexOf(" + JSON.stringify(SCRIPT_END_MARKER) + ");",
    'const m=new M(f,null);m.filename=f;m.paths=M._nodeModulePaths(require("path").dirname(f));',
    "m._compile(b.subarray(b.indexOf('\\n',b.indexOf('\\n')+1)+1,e).toString('utf8'),f);",
  ].join('');
  return Buffer.from(`#!/bin/sh\nexec node -e ${shellQuote(loader)} "$0" "$@"\n${script}${SCRIPT_END_MARKER}`);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
