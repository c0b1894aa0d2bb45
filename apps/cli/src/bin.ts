#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS SMOLVM_NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS} node
// The `smolvm` executable of a checkout (dist/smolvm.js): loads the CLI bundle
// (dist/smolvm-main.js) through a V8 code cache in <cache>/code-cache (see launch.ts), then runs
// it. It stays this file, so process.argv[1] (how the supervisor re-runs the CLI) names the same
// executable as before. Only Node built-ins and tiny modules here: this file is compiled on
// every start, uncached. The hashbang starts node without NODE_EXTRA_CA_CERTS (parsing it is
// ~90 ms per start with a system bundle in it) and restoreCaCertsEnv puts it back: see
// libs/common/src/ca-certs.ts.
import path from 'node:path';
import { restoreCaCertsEnv } from '@smolvm/common';
import { launch } from './launch';
import type * as Prestart from './prestart';

restoreCaCertsEnv();
const bundle = path.join(__dirname, 'smolvm-main.js');
launch({
  bundle,
  // A file of its own, so that other commands load none of it; through the code cache, as it
  // runs before the early restore starts (compiling it was ~10 ms of every warm start, twice:
  // in the CLI and in the supervisor it spawns).
  prestart: (args, cache, load) =>
    (load(path.join(__dirname, 'smolvm-prestart.js')) as typeof Prestart).prestartFor(args, cache, bundle),
  fastExec: path.join(__dirname, 'smolvm-exec.js'),
  fastStart: path.join(__dirname, 'smolvm-start.js'),
  supervise: path.join(__dirname, 'smolvm-supervise.js'),
});
