// driver-kvm's early start (@smolvm/driver-api/early-start): QEMU's restore from a recipe. Its own
// entry point, @smolvm/driver-kvm/early-start, because a CLI loader loads it before anything else:
// only the QEMU prestart code, not the driver.
import { registerEarlyStart } from '@smolvm/driver-api/early-start';
import { parseQemuRestoreRecipe, prestartQemuRestore } from '@smolvm/qemu/prestart';

/** The same as KVM_DRIVER_NAME (driver.ts), which this file must not load. */
const NAME = 'kvm';

registerEarlyStart(NAME, (recipe, runDir, env, options) => {
  const qemu = parseQemuRestoreRecipe(recipe, env);
  return qemu && prestartQemuRestore(qemu, runDir, env, options);
});
