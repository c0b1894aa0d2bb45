// yargs renders the running command's whole help text right after it starts the command's handler
// (usage.cacheHelpMessage, so that a later failure could still show that help): 10-40 ms of CPU on
// the way to every command's first await, the VM start of `machine run` or a packed run among them.
// Our failures never show help (usageFailure rethrows, or says which --help to read), so the text
// would be rendered for nothing. yargs has no option for it: its usage instance (one per parser,
// kept across the resets of nested commands) gets a no-op instead. If a newer yargs is shaped
// otherwise, nothing changes.
import type { Argv } from 'yargs';

interface UsageInstance {
  cacheHelpMessage?: () => void;
}

interface WithInternals {
  getInternalMethods?: () => { getUsageInstance?: () => UsageInstance | undefined };
}

export function skipHelpCache<T>(parser: Argv<T>): Argv<T> {
  const usage = (parser as unknown as WithInternals).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => undefined;
  return parser;
}
