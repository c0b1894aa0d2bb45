// The shared library build: see tools/tsup-lib.config.ts.
export { default } from '../../tools/tsup-lib.config';
