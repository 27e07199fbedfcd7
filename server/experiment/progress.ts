/**
 * The experiment's progress bar on stderr: run i of n, strategy and repeat, the run's time out
 * of its duration, and the latest accuracy. Redrawn in place on a terminal, else a line every 10 s.
 */
import type { Sample } from '../admin/types.ts';

export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private lastPrinted = 0;

  constructor(private readonly runs: number, private readonly duration: number) {}

  update(index: number, what: string, t: number, s: Sample | undefined): void {
    const width = 30;
    const frac = Math.max(0, Math.min(1, t / this.duration));
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const time = t < 0 ? `warming up ${(-t).toFixed(0)} s` : `${t.toFixed(0)}/${this.duration} s`;
    const acc = s?.accuracy !== null && s?.accuracy !== undefined ? ` acc ${s.accuracy.toFixed(3)}` : s ? ' acc -' : '';
    const line = `run ${index + 1}/${this.runs} ${what} [${bar}] ${time}${acc}${s ? ` updates ${s.updatesApplied}${s.nodesUp === 0 ? ' (PS down)' : ''}` : ''}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
    } else if (Date.now() - this.lastPrinted >= 10000) {
      this.lastPrinted = Date.now();
      process.stderr.write(`${line}\n`);
    }
  }

  note(text: string): void {
    process.stderr.write(`${this.tty ? '\r\x1b[2K' : ''}${text}\n`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
