// Progress of a pull, as events: rendering (bars, throttling, TTY or not) is the CLI's business.
export type PullEvent =
  | {
      type: 'resolved';
      reference: string;
      manifestDigest: string;
      platform: string;
      blobs: Array<{ digest: string; size: number; mediaType: string }>;
      totalBytes: number;
    }
  | { type: 'blob-start'; digest: string; size: number; resumedFrom: number }
  | { type: 'blob-progress'; digest: string; bytes: number; size: number; overallBytes: number; overallTotal: number }
  | { type: 'blob-retry'; digest: string; attempt: number; error: string }
  | { type: 'blob-done'; digest: string; size: number; cached: boolean }
  | { type: 'done'; reference: string; manifestDigest: string; downloadedBytes: number };

export type ProgressListener = (event: PullEvent) => void;
