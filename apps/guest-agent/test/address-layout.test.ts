// ASLR under TCG (address-layout.ts): off only on QEMU's TCG CPU, best effort.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixedLayoutUnderTcg, isTcgCpu } from '../src/address-layout';

const cpuinfo = (model: string) =>
  `processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: ${model}\nflags\t\t: fpu\n`;

describe('ASLR under TCG', () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'smolvm-aslr-'))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("recognises only QEMU's TCG CPU: hardware-virtualized and other models keep randomization", () => {
    expect(isTcgCpu(cpuinfo('QEMU TCG CPU version 2.5+'))).toBe(true);
    expect(isTcgCpu(cpuinfo('AMD EPYC 7B13'))).toBe(false);
    expect(isTcgCpu(cpuinfo('QEMU Virtual CPU version 2.5+'))).toBe(false);
    expect(isTcgCpu(cpuinfo('Intel(R) Xeon(R) CPU @ 2.20GHz'))).toBe(false);
    // Not a model name line: a flag or a process name that mentions it is not the CPU.
    expect(isTcgCpu('processor\t: 0\nflags\t\t: QEMU TCG CPU\n')).toBe(false);
    expect(isTcgCpu('')).toBe(false);
  });

  it('writes 0 to the sysctl on a TCG CPU, leaves it alone otherwise, and never throws', () => {
    const info = path.join(tmp, 'cpuinfo');
    const sysctl = path.join(tmp, 'randomize_va_space');
    fs.writeFileSync(sysctl, '2\n');
    fs.writeFileSync(info, cpuinfo('AMD EPYC 7B13'));
    expect(fixedLayoutUnderTcg(info, sysctl)).toBe(false);
    expect(fs.readFileSync(sysctl, 'utf8')).toBe('2\n');
    fs.writeFileSync(info, cpuinfo('QEMU TCG CPU version 2.5+'));
    expect(fixedLayoutUnderTcg(info, sysctl)).toBe(true);
    expect(fs.readFileSync(sysctl, 'utf8')).toBe('0');
    expect(fixedLayoutUnderTcg(path.join(tmp, 'missing'), sysctl)).toBe(false);
    expect(fixedLayoutUnderTcg(info, path.join(tmp, 'no-dir', 'sysctl'))).toBe(false);
  });
});
