// The supervisor of one machine (`machine _supervise`): what the hidden command runs, from the CLI
// bundle or from dist/smolvm-supervise.js (supervise-fast.ts), which the executable loads instead.
import { smolvmDirs } from '@smolvm/common';
import { superviseMachine } from '@smolvm/machines';
import { agentBundlePath, guestAssets } from '../../runtime-assets';
import { keepRecipe, takePrestarted } from '../../prestart';

export interface SuperviseOptions {
  name: string;
  imageErofs?: string;
  cold: boolean;
}

/**
 * Runs the machine's supervisor until its VM ends. `recipeBundle`: the CLI bundle the executable's
 * loader keys early-start recipes by (the next start's loader looks this one up by it).
 */
export async function runSupervise(opts: SuperviseOptions, recipeBundle: string): Promise<void> {
  // One turn of the event loop first: an early start that sets its guest up sends the setup once
  // QEMU has connected (prestart.ts), which only an event loop turn sees.
  await new Promise((resolve) => setImmediate(resolve));
  const early = takePrestarted();
  await superviseMachine({
    name: opts.name,
    agentBundle: agentBundlePath(),
    guestAssets: guestAssets(),
    ...(opts.imageErofs ? { imageErofs: opts.imageErofs } : {}),
    cold: opts.cold,
    ...(early ? { prestarted: early } : {}),
    onRestoreRecipe: (recipe) => keepRecipe(process.argv.slice(2), smolvmDirs(process.env).cache, recipeBundle, recipe),
  });
}
