// The packed executable's stub, as `pack create` writes it next to a payload: `smolvm-stub`, the
// pack-stub app as a single executable (Node included; tools/sea/build.ts), so a pack runs where
// there is no Node. It is shipped beside `smolvm`, not inside it: a stub carries Node (~94 MB,
// which cannot be shared with smolvm's own copy: a single executable's program sits inside its
// binary), so embedding it would double smolvm; and beside it, the stub copied into every pack
// holds only what a pack needs (no CLI, kernel or agent inputs: the pack has its own).
// A checkout without the single-file build falls back to the pack-stub bundle run by Node
// (`node stub.js`, or directly through its hashbang).
import fs from 'node:fs';
import path from 'node:path';
import { NotFoundError } from '@smolvm/common';
import { isSingleExecutable } from '@smolvm/sea';

export interface StubExecutable {
  path: string;
  /** 'node-script': a CommonJS bundle Node runs; 'native': an executable file. */
  kind: 'node-script' | 'native';
}

export const STUB_EXECUTABLE = 'smolvm-stub';

export function locateStubExecutable(): StubExecutable {
  // The single file: only beside itself (a place as trusted as the executable). A checkout:
  // apps/pack-stub/dist, seen from apps/cli/dist.
  const native = isSingleExecutable()
    ? path.join(path.dirname(process.execPath), STUB_EXECUTABLE)
    : path.join(__dirname, '..', '..', 'pack-stub', 'dist', STUB_EXECUTABLE);
  if (fs.existsSync(native)) return { path: native, kind: 'native' };
  if (isSingleExecutable()) {
    throw new NotFoundError(`the packed executable's stub ${STUB_EXECUTABLE} is not beside ${process.execPath}`, {
      remedy: `install ${STUB_EXECUTABLE} (apps/pack-stub/dist/${STUB_EXECUTABLE}, built by tools/setup) in ${path.dirname(process.execPath)}`,
    });
  }
  const bundle = path.join(__dirname, 'stub', 'stub.js');
  if (!fs.existsSync(bundle))
    throw new NotFoundError(`the packed executable's stub is missing (${bundle})`, {
      remedy: 'rebuild smolvm: npx nx build cli',
    });
  return { path: bundle, kind: 'node-script' };
}

/**
 * Where a pack's runtime (the Node its guest runs on) may be besides the pack's own executable:
 * this smolvm's stub, when it is a single executable (packs this smolvm made share its bytes).
 */
export function stubRuntimeCandidates(): string[] {
  try {
    const stub = locateStubExecutable();
    return stub.kind === 'native' ? [stub.path] : [];
  } catch {
    return [];
  }
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
    'const b=fs.readFileSync(f),e=b.indexOf(' + JSON.stringify(SCRIPT_END_MARKER) + ');',
    'const m=new M(f,null);m.filename=f;m.paths=M._nodeModulePaths(require("path").dirname(f));',
    "m._compile(b.subarray(b.indexOf('\\n',b.indexOf('\\n')+1)+1,e).toString('utf8'),f);",
  ].join('');
  return Buffer.from(`#!/bin/sh\nexec node -e ${shellQuote(loader)} "$0" "$@"\n${script}${SCRIPT_END_MARKER}`);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
