// Keeps the last lines a process wrote (a hypervisor's stderr) for error messages, bounded in memory.
export class OutputTail {
  private lines: string[] = [];
  private partial = '';

  constructor(private readonly maxLines = 40) {}

  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    this.lines.push(...parts.map((l) => l.replace(/\r$/, '')));
    if (this.lines.length > this.maxLines) this.lines = this.lines.slice(-this.maxLines);
    if (this.partial.length > 4096) this.partial = this.partial.slice(-4096);
  }

  get(): string[] {
    return this.partial ? [...this.lines, this.partial] : [...this.lines];
  }
}
