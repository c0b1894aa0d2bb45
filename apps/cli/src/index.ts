// Public API of @smolvm/cli: The smolvm command-line interface
export {};
