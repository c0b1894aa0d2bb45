// Public API of @smolvm/driver-api: The hypervisor-driver contract, driver registry and conformance suite
export {};
