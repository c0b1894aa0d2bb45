// Helpers shared by file and directory copies.
export interface GuestPath {
  machine: string;
  path: string;
}

export function summary(verb: string, bytes: number, where: string, t0: number, unit = 'bytes'): void {
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(
    `${verb} ${bytes} ${unit} to ${where} in ${s.toFixed(2)} s (${(bytes / 1e6 / Math.max(s, 0.001)).toFixed(1)} MB/s)\n`,
  );
}
