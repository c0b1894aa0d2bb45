// @smolvm/drivers/early-start: the built-in drivers' early starts (@smolvm/driver-api/early-start),
// for a CLI loader that runs before anything else is loaded. Their small entry points only,
// never a driver's index.
import '@smolvm/driver-kvm/early-start';
