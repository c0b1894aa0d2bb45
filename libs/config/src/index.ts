// Public API of @smolvm/config: Smolfile parsing and validation, merge rules, flag parsers, OCI reference parsing
export {};
