// Which conformance tests a driver must pass: each test names the feature it needs, and runs only
// where the driver's probe() declares it (a driver without 9p is not failed for its shares).
import type { DriverFeatures } from '../driver';

/** A feature a test needs: a field of DriverFeatures and the values that satisfy it. */
export interface FeatureNeed<K extends keyof DriverFeatures = keyof DriverFeatures> {
  feature: K;
  oneOf: ReadonlyArray<DriverFeatures[K]>;
}

export function needs<K extends keyof DriverFeatures>(feature: K, ...oneOf: Array<DriverFeatures[K]>): FeatureNeed<K> {
  return { feature, oneOf };
}

/** Whether `features` meets `need` (no features at all meets nothing). */
export function meets(features: DriverFeatures | undefined, need: FeatureNeed): boolean {
  return features !== undefined && (need.oneOf as ReadonlyArray<unknown>).includes(features[need.feature]);
}

export function describeNeed(need: FeatureNeed): string {
  return `${need.feature}: ${need.oneOf.map(String).join(' | ')}`;
}

/**
 * The spec fields a driver that lacks a feature must refuse (InvalidVmSpecError), as far as a
 * VmSpec can ask for it: the conformance suite starts each and expects the refusal.
 */
export function undeclaredRequests(features: DriverFeatures): Array<{ need: FeatureNeed; field: string }> {
  const out: Array<{ need: FeatureNeed; field: string }> = [];
  if (features.shares === 'none') out.push({ need: needs('shares', '9p', 'virtio-fs'), field: 'shares' });
  else if (!features.shareOwnership)
    out.push({ need: needs('shareOwnership', true), field: 'shares[0].hostOwnership' });
  if (features.nic !== 'unix-stream') out.push({ need: needs('nic', 'unix-stream'), field: 'network' });
  if (!features.diskRanges) out.push({ need: needs('diskRanges', true), field: 'disks[0].range' });
  return out;
}
