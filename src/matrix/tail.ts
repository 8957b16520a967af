/** Keeps the last lines of a stream, at most `maxLines` and `maxChars`. */
export class TailBuffer {
  private lines: string[] = [];
  private chars = 0;

  constructor(private readonly maxLines = 60, private readonly maxChars = 16_000) {}

  push(line: string): void {
    const cut = line.length > this.maxChars ? `${line.slice(0, this.maxChars)}…` : line;
    this.lines.push(cut);
    this.chars += cut.length + 1;
    while (this.lines.length > this.maxLines || (this.chars > this.maxChars && this.lines.length > 1)) this.chars -= this.lines.shift()!.length + 1;
  }

  toString(): string {
    return this.lines.join('\n');
  }
}
