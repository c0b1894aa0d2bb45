// Which driver runs a VM: the one named by --driver / Smolfile / SMOLVM_DRIVER, else the first
// registered driver whose probe() says it is available (Lima's registry is the model).
import type { Driver, ProbeResult } from './driver';
import { DriverUnavailableError, NoUsableDriverError, UnknownDriverError } from './errors';

export interface SelectDriverOptions {
  /** A name the caller resolved from --driver or the Smolfile; wins over SMOLVM_DRIVER. */
  name?: string;
  /** Where `name` came from, for error messages: '--driver', 'Smolfile'... */
  source?: string;
  env?: NodeJS.ProcessEnv;
}

export interface SelectedDriver {
  driver: Driver;
  probe: ProbeResult;
}

export class DriverRegistry {
  private readonly drivers: Driver[] = [];

  /** Registration order is preference order. Registering a name again replaces it in place. */
  register(driver: Driver): void {
    if (!/^[a-z][a-z0-9-]*$/.test(driver.name))
      throw new Error(`driver name '${driver.name}' must be lowercase letters, digits and dashes`);
    const at = this.drivers.findIndex((d) => d.name === driver.name);
    if (at >= 0) this.drivers[at] = driver;
    else this.drivers.push(driver);
  }

  unregister(name: string): void {
    const at = this.drivers.findIndex((d) => d.name === name);
    if (at >= 0) this.drivers.splice(at, 1);
  }

  list(): readonly Driver[] {
    return [...this.drivers];
  }

  get(name: string): Driver | undefined {
    return this.drivers.find((d) => d.name === name);
  }

  async select(options: SelectDriverOptions = {}): Promise<SelectedDriver> {
    const env = options.env ?? process.env;
    let name = options.name;
    let source = options.source;
    if (name === undefined && env.SMOLVM_DRIVER) {
      name = env.SMOLVM_DRIVER;
      source = 'SMOLVM_DRIVER';
    }
    if (name !== undefined) {
      const driver = this.get(name);
      if (!driver)
        throw new UnknownDriverError(
          name,
          this.drivers.map((d) => d.name),
          source,
        );
      const probe = await safeProbe(driver);
      if (!probe.available) {
        throw new DriverUnavailableError(driver.name, probe.reason ?? 'probe failed', { remedy: probe.remedy });
      }
      return { driver, probe };
    }
    const reasons: Array<{ driver: string; reason: string; remedy?: string }> = [];
    // Sequential on purpose: the first usable driver wins and later probes need not run.
    for (const driver of this.drivers) {
      const probe = await safeProbe(driver);
      if (probe.available) return { driver, probe };
      reasons.push({ driver: driver.name, reason: probe.reason ?? 'probe failed', remedy: probe.remedy });
    }
    throw new NoUsableDriverError(reasons);
  }
}

/** probe() must not throw; one that does is reported as unavailable rather than crashing selection. */
async function safeProbe(driver: Driver): Promise<ProbeResult> {
  try {
    return await driver.probe();
  } catch (err) {
    return { available: false, reason: `probe failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

// One registry per process even if two copies of this module get bundled (a driver lib built on
// its own inlines driver-api): keep it on globalThis under a registered symbol.
const KEY = Symbol.for('smolvm.driver-registry');
type WithRegistry = typeof globalThis & { [KEY]?: DriverRegistry };

export function defaultRegistry(): DriverRegistry {
  const g = globalThis as WithRegistry;
  g[KEY] ??= new DriverRegistry();
  return g[KEY];
}

export function registerDriver(driver: Driver): void {
  defaultRegistry().register(driver);
}

export function listDrivers(): readonly Driver[] {
  return defaultRegistry().list();
}

export function selectDriver(options: SelectDriverOptions = {}): Promise<SelectedDriver> {
  return defaultRegistry().select(options);
}
