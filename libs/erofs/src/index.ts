// Public API of @smolvm/erofs: Writes read-only erofs filesystem images (and applies OCI layer stacks into them) without root or native tools
export {};
