// The drivers' early starts (@smolvm/driver-api/early-start), for the loader: one line per driver
// that has one, beside its registry line in runtime-assets.ts. Entry points only, never a driver's
// index: the loader runs this before the CLI, on every start.
import '@smolvm/driver-kvm/early-start';
