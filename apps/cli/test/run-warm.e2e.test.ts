// The `machine run` end-to-end tests again, every VM restored from a boot snapshot (the first
// run of each VM shape makes it): the results must be exactly those of cold boots.
process.env.SMOLVM_E2E_WARM = '1';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./run.e2e.test');
