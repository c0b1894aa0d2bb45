// Public API of @smolvm/oci: OCI registry client, content-addressed store, image config, image -> erofs preparation
export {};
