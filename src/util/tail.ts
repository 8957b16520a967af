/**
 * Keeps the last lines of a stream, at most `maxLines` and `maxChars`. A line longer than a quarter
 * of maxChars keeps its start and its end (where a splitter's cut marker is), so several lines fit.
 */
export class TailBuffer {
  private lines: string[] = [];
  private chars = 0;

  constructor(
    private readonly maxLines = 60,
    private readonly maxChars = 16_000,
  ) {}

  push(line: string): void {
    const half = Math.floor(this.maxChars / 8);
    const cut = line.length > 2 * half + 1 ? `${line.slice(0, half)}…${line.slice(-half)}` : line;
    this.lines.push(cut);
    this.chars += cut.length + 1;
    while (this.lines.length > this.maxLines || (this.chars > this.maxChars && this.lines.length > 1)) this.chars -= this.lines.shift()!.length + 1;
  }

  /** The last n lines kept (all by default). */
  last(n = this.maxLines): string[] {
    return n >= this.lines.length ? [...this.lines] : this.lines.slice(-n);
  }

  toString(): string {
    return this.lines.join('\n');
  }
}
