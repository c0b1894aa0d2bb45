// The persistent machine end-to-end tests again, every `machine start` a cold boot (--cold): the
// results must be exactly those of starts restored from boot snapshots (machine.e2e.test.ts).
process.env.SMOLVM_E2E_COLD = '1';
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('./machine.e2e.test');
