// Linux ABI values (x86-64; the generic ones are the same on arm64).
export const TIOCSWINSZ = 0x5414;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
export const CLOCK_REALTIME = 0;
export const RB_AUTOBOOT = 0x01234567;
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_BIND = 4096;
/** umount2: detach now, let go once unused. */
export const MNT_DETACH = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;
export const MS_REC = 16384;
// <linux/random.h>: RNDADDENTROPY = _IOW('R', 0x03, int[2]); RNDRESEEDCRNG = _IO('R', 0x07).
export const RNDADDENTROPY = 0x40085203;
export const RNDRESEEDCRNG = 0x5207;
// <linux/fs.h>: BLKFLSBUF = _IO(0x12, 97).
export const BLKFLSBUF = 0x1261;
// <linux/fs.h>: FIFREEZE = _IOWR('X', 119, int).
export const FIFREEZE = 0xc0045877;
