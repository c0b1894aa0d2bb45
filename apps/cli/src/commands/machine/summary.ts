import type { MachineSummary } from '@smolvm/machines';

/** The STATE column and `state:` line: an ephemeral machine says so next to its state. */
export function stateLabel(summary: MachineSummary): string {
  return summary.ephemeral ? `${summary.state} (ephemeral)` : summary.state;
}
