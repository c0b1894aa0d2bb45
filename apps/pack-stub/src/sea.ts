// The packed executable as a single executable (dist/smolvm-stub, built by tools/sea/build.ts): this
// is its main script, and the stub bundle (dist/stub.js) is its asset, loaded through the same V8
// code cache as the smolvm executable (apps/cli/src/launch.ts), keyed by this executable. That cache
// is written after a run, so it holds every function the command compiled (a run's VM start and
// exec too), where the build's own code cache holds only what V8 compiles before running anything.
import { isAscii } from 'node:buffer';
import { readAsset } from '@smolvm/sea';
import { launch } from '../../cli/src/launch';
import { prestartFor } from '../../cli/src/prestart';
import { stubRecipeKey } from './early-run';

launch({
  bundle: process.execPath,
  source: () => {
    const bytes = readAsset('stub.js');
    return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  },
  // `./my-app [run] [-- CMD]`: the restore begins before the stub has loaded (early-run.ts).
  prestart: (args, cache) => {
    const key = stubRecipeKey();
    if (key !== undefined) prestartFor(args, cache, key);
  },
  prestartCommands: ['', 'run'],
});
