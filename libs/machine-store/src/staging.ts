// Names for directories that are on their way in (being built) or out (being removed).
// They start with '.', which no machine name may, so they never look like machines; and they
// carry the owner's pid + start time so a leftover from a crashed process can be recognised.
import fs from 'node:fs';
import { currentProcessIdentity, randomHex, type ProcessIdentity } from '@smolvm/common';

export type StagingKind = 'tmp' | 'trash';

export interface StagingInfo {
  kind: StagingKind;
  owner: ProcessIdentity;
  /** What the directory was for (a machine name); informational only. */
  label: string;
}

let self: ProcessIdentity | undefined;

/** This process's identity; node cannot fork, so it never changes. */
export function selfIdentity(): ProcessIdentity {
  self ??= currentProcessIdentity();
  return self;
}

export function stagingName(kind: StagingKind, label: string): string {
  const { pid, startTime } = selfIdentity();
  return `.${kind}-${pid}-${startTime ?? 'x'}-${randomHex(6)}-${label}`;
}

const STAGING = /^\.(tmp|trash)-(\d+)-(\d+|x)-[0-9a-f]+-(.*)$/s;

export function parseStagingName(entry: string): StagingInfo | null {
  const m = STAGING.exec(entry);
  if (!m) return null;
  return {
    kind: m[1] as StagingKind,
    owner: { pid: Number(m[2]), startTime: m[3] === 'x' ? null : Number(m[3]) },
    label: m[4],
  };
}

let bootId: string | null | undefined;

/** Kernel boot id: a pid + start time from an earlier boot says nothing about this one. */
export function currentBootId(): string | null {
  if (bootId === undefined) {
    try {
      bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootId = null;
    }
  }
  return bootId;
}
