// @smolvm/driver-api/conformance: the driver conformance suite and its fixtures, for tests and
// benchmarks only (it needs jest's globals and builds guest fixtures). Not in the production index.
export { runDriverConformance, type ConformanceOptions } from './suite';
export { prepareConformanceFixtures, FixtureError, type ConformanceFixtures, type FixtureOptions } from './fixtures';
export { LineAgent, type CommandResult } from './line-agent';
export { cpioNewc, type CpioEntry } from './cpio';
export { processesMentioning } from './booter';
