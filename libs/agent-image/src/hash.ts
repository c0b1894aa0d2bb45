// Content hashes of the image inputs, remembered by (path, size, mtime, inode): hashing the
// ~100 MB node binary on every `smolvm machine run` would cost more than the rest of the check.
import fs from 'node:fs';
import { sha256File, writeJsonAtomic } from '@smolvm/common';

interface Entry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

export class HashMemo {
  private entries: Record<string, Entry> = {};
  private dirty = false;

  constructor(private readonly file: string) {
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (parsed && typeof parsed === 'object') this.entries = parsed as Record<string, Entry>;
    } catch {
      // Missing or unreadable: start empty.
    }
  }

  sha256(file: string): string {
    const st = fs.statSync(file);
    const known = this.entries[file];
    if (known && known.size === st.size && known.mtimeMs === st.mtimeMs && known.ino === st.ino) return known.sha256;
    const sha256 = sha256File(file);
    this.entries[file] = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 };
    this.dirty = true;
    return sha256;
  }

  save(): void {
    if (!this.dirty) return;
    try {
      writeJsonAtomic(this.file, this.entries);
      this.dirty = false;
    } catch {
      // Only a cache: the next run hashes again.
    }
  }
}
