// The built-in drivers: importing this registers each with @smolvm/driver-api, in preference
// order (the first available one runs VMs unless one is named). Every app that runs VMs imports
// this, so a new driver is one line here (and, if it has an early start, one in early-start.ts).
import '@smolvm/driver-kvm';
import '@smolvm/driver-hvf';
