/**
 * The progress line of a long search: one line on a terminal's stderr, rewritten in place, and
 * wiped before any other output so a table or a verdict never starts in the middle of it.
 */
export interface LineSink {
  write(s: string): unknown;
}

/** Carriage return and ANSI "erase line": the cursor back to column 0 on an empty line. */
const WIPE = '\r\x1b[2K';

export class ProgressLine {
  private shown = false;

  constructor(private readonly sink: LineSink) {}

  show(line: string): void {
    this.sink.write(`${WIPE}${line}`);
    this.shown = true;
  }

  /** Wipe the line if one is showing; the next output starts on a clean line. */
  clear(): void {
    if (!this.shown) return;
    this.sink.write(WIPE);
    this.shown = false;
  }

  /** An output function that wipes the progress line first. */
  before(out: (s: string) => void): (s: string) => void {
    return (s) => {
      this.clear();
      out(s);
    };
  }
}
