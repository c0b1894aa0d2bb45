// CPU count, memory and disk sizes. Bare numbers keep the unit the reference documents
// (memory in MiB, disks in GiB) so `memory = 1024` and `--memory 1024` mean the same thing.
import { MAX_CPUS, MAX_DISK_GIB, MAX_MEMORY_MIB, MIN_CPUS, MIN_DISK_GIB, MIN_MEMORY_MIB } from './defaults';
import { invalid } from './invalid';

const MEMORY_REMEDY = 'write a whole number of MiB or a size with a unit, e.g. 512, 512M, 2G or 2GiB';
const DISK_REMEDY = 'write a whole number of GiB or a size with a unit, e.g. 20, 20G, 20GiB or 1T';

/** Decimal (MB/GB) suffixes are read as binary, as Docker does: nobody sizes VMs in powers of ten. */
const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  k: 1 / 1024,
  kb: 1 / 1024,
  kib: 1 / 1024,
  m: 1,
  mb: 1,
  mib: 1,
  g: 1024,
  gb: 1024,
  gib: 1024,
  t: 1024 * 1024,
  tb: 1024 * 1024,
  tib: 1024 * 1024,
};

const DISK_UNITS: Record<string, number> = {
  '': 1,
  m: 1 / 1024,
  mb: 1 / 1024,
  mib: 1 / 1024,
  g: 1,
  gb: 1,
  gib: 1,
  t: 1024,
  tb: 1024,
  tib: 1024,
};

interface Quantity {
  kind: string;
  unitName: string;
  units: Record<string, number>;
  min: number;
  max: number;
  remedy: string;
}

function parseQuantity(spec: string | number, q: Quantity): number {
  const input = String(spec);
  let value: number;
  if (typeof spec === 'number') {
    value = spec;
  } else {
    const m = /^([+-]?)(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(spec.trim());
    if (!m) throw invalid(q.kind, input, 'not a number with an optional unit', q.remedy);
    const factor = q.units[m[3].toLowerCase()];
    if (factor === undefined) throw invalid(q.kind, input, `unknown unit "${m[3]}"`, q.remedy);
    value = (m[1] === '-' ? -1 : 1) * Number(m[2]) * factor;
  }
  if (!Number.isFinite(value)) throw invalid(q.kind, input, 'not a finite number', q.remedy);
  if (value <= 0) throw invalid(q.kind, input, 'must be greater than zero', q.remedy);
  if (!Number.isInteger(value)) throw invalid(q.kind, input, `is not a whole number of ${q.unitName}`, q.remedy);
  if (value < q.min)
    throw invalid(q.kind, input, `${value} ${q.unitName} is below the minimum of ${q.min} ${q.unitName}`, q.remedy);
  if (value > q.max)
    throw invalid(q.kind, input, `${value} ${q.unitName} is above the maximum of ${q.max} ${q.unitName}`, q.remedy);
  return value;
}

/** Memory in MiB: "512", "512M", "2G", "2GiB", or a number of MiB. */
export function parseMemory(spec: string | number): number {
  return parseQuantity(spec, {
    kind: 'memory size',
    unitName: 'MiB',
    units: MEMORY_UNITS,
    min: MIN_MEMORY_MIB,
    max: MAX_MEMORY_MIB,
    remedy: MEMORY_REMEDY,
  });
}

/** Disk size in GiB: "20", "20G", "20GiB", "1T", or a number of GiB. */
export function parseDiskSize(spec: string | number): number {
  return parseQuantity(spec, {
    kind: 'disk size',
    unitName: 'GiB',
    units: DISK_UNITS,
    min: MIN_DISK_GIB,
    max: MAX_DISK_GIB,
    remedy: DISK_REMEDY,
  });
}

/** vCPU count, 1 to MAX_CPUS. */
export function parseCpus(spec: string | number): number {
  const input = String(spec);
  const remedy = `write a whole number from ${MIN_CPUS} to ${MAX_CPUS}, e.g. 2`;
  const value = typeof spec === 'number' ? spec : /^\s*\d+\s*$/.test(spec) ? Number(spec) : NaN;
  if (!Number.isInteger(value)) throw invalid('CPU count', input, 'not a whole number', remedy);
  if (value < MIN_CPUS || value > MAX_CPUS) {
    throw invalid('CPU count', input, `must be between ${MIN_CPUS} and ${MAX_CPUS}`, remedy);
  }
  return value;
}
