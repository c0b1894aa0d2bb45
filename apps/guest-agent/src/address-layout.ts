// Address space layout randomization under TCG. QEMU 7.2's TCG, for x86 guests, ties the code it
// translates to the guest's virtual addresses, so every process whose ld.so and libc are mapped
// somewhere new has them translated again: measured in a 1-vCPU guest, fork+exec of /bin/true
// took 41-62 ms with randomization and 7-8 ms without it, and that was most of a `machine exec --
// true`. Under TCG the agent turns it off for the guest; with hardware virtualization (KVM, HVF)
// the guest keeps the kernel's default.
// Trade-off (docs/security.md): programs in a TCG guest run at predictable addresses; the host's
// isolation does not depend on them. A guest that wants it back writes 2 to the same file.
import fs from 'node:fs';

const RANDOMIZE_VA_SPACE = '/proc/sys/kernel/randomize_va_space';

/**
 * Whether /proc/cpuinfo's text is that of QEMU's TCG CPU (`-cpu max` without an accelerator: its
 * model name says so). Any other CPU, TCG with another model included, keeps randomization.
 */
export function isTcgCpu(cpuinfo: string): boolean {
  return /^model name\s*:\s*QEMU TCG CPU\b/m.test(cpuinfo);
}

/** Turns randomization off on a TCG CPU; true when it did. Best effort: nothing fails without it. */
export function fixedLayoutUnderTcg(cpuinfo = '/proc/cpuinfo', sysctl = RANDOMIZE_VA_SPACE): boolean {
  try {
    if (!isTcgCpu(fs.readFileSync(cpuinfo, 'utf8'))) return false;
    fs.writeFileSync(sysctl, '0');
    return true;
  } catch {
    return false;
  }
}
