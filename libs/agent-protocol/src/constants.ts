// Numbers both ends agree on. Changing the wire format (not just adding an optional field or a
// new op) means bumping PROTOCOL_VERSION: the host refuses an agent that speaks another version.
export const PROTOCOL_VERSION = 1;

/** Largest frame (everything after the 4-byte length prefix) a peer accepts unless it says otherwise. */
export const DEFAULT_MAX_FRAME = 1024 * 1024;

/** Smallest maximum a peer may announce: below this, a header plus a useful payload cannot fit. */
export const MIN_MAX_FRAME = 16 * 1024;

/** JSON headers are small control records; bigger ones are refused before parsing. */
export const MAX_HEADER = 64 * 1024;

/**
 * Bytes a receiver lets a sender have in flight per stream before it grants more credit.
 * Bounds memory per stream on both ends; big enough to cover a credit round trip at the
 * channel's measured throughput (tens of MiB/s, milliseconds of latency).
 */
export const DEFAULT_WINDOW = 1024 * 1024;

/** Smallest window a peer may announce: a 1-byte window would turn a stream into ping-pong. */
export const MIN_WINDOW = 4 * 1024;

/** Largest payload one data frame carries: keeps interleaved streams (stdout vs. stderr) fair. */
export const MAX_DATA_CHUNK = 256 * 1024;

/** Room reserved for a data frame's header when sizing chunks against the peer's maximum frame. */
export const DATA_HEADER_RESERVE = 256;
