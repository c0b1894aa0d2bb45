// The single-file `smolvm` (dist/smolvm, built by tools/sea/build.ts): this is its main script,
// and the CLI bundle is its asset `smolvm-main.js`, loaded through the same V8 code cache as
// dist/smolvm.js (launch.ts), keyed by the executable. Everything the CLI needs beyond Node
// built-ins is in the bundle or among the assets (@smolvm/sea extracts those on first use).
// Node reads NODE_EXTRA_CA_CERTS itself before this runs (no hashbang to defer it here).
import { restoreCaCertsEnv } from '@smolvm/common';
import { readAsset } from '@smolvm/sea';
import { launch } from './launch';
import { prestartFor } from './prestart';

restoreCaCertsEnv();
launch({
  bundle: process.execPath,
  source: () => readAsset('smolvm-main.js').toString('latin1'),
  prestart: (args, cache) => prestartFor(args, cache, process.execPath),
});
