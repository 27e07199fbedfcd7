/**
 * The live status line of `tabswarm start` on a terminal: one line, redrawn in place, with the
 * test accuracy and loss (a sparkline of the recent evaluations and a trend arrow), the model
 * version, updates per second, the workers by backend and state, the PS's state and the join URL.
 *
 * `renderStatusLine` is pure (a snapshot in, a string out: unit-tested in view.test.ts);
 * `sampleSnapshot` reads the in-process PS; `StatusLine` is the thin redraw loop. Log lines go
 * through `StatusLine.print`, which clears the status line, writes the log line and redraws,
 * so the two never share a row.
 */
import type { ParameterServer } from '../ps/service.ts';

/** What one redraw shows. */
export interface Snapshot {
  readonly version: number;
  readonly updatesPerSec: number;
  /** Test accuracy and loss of the evaluations so far, oldest first; empty before the first. */
  readonly accuracy: readonly number[];
  readonly loss: readonly number[];
  /** One entry per worker session: its backend (as it reported it) and its state. */
  readonly workers: readonly { readonly backend: string; readonly state: string }[];
  readonly psState: PsState;
  readonly url: string;
}

export type PsState = 'training' | 'idle' | 'flushing' | 'adopting' | 'down';

const BARS = '▁▂▃▄▅▆▇█';

/** The last `width` values as block characters, scaled between their own minimum and maximum. */
export function sparkline(values: readonly number[], width = 12): string {
  const recent = values.slice(-width).filter(Number.isFinite);
  if (recent.length === 0) return '';
  const lo = Math.min(...recent);
  const span = Math.max(...recent) - lo;
  return recent.map((v) => BARS[span === 0 ? BARS.length - 1 : Math.round(((v - lo) / span) * (BARS.length - 1))]).join('');
}

/** ↑, ↓ or → comparing the last value with the one before it (ties within `epsilon` are →). */
export function trend(values: readonly number[], epsilon = 1e-4): string {
  if (values.length < 2) return '';
  const d = values[values.length - 1]! - values[values.length - 2]!;
  return d > epsilon ? '↑' : d < -epsilon ? '↓' : '→';
}

/** Workers grouped as `2 webgl training, 1 cpu buffering`; `none` when there are none. */
export function workerSummary(workers: Snapshot['workers']): string {
  if (workers.length === 0) return 'no workers';
  const groups = new Map<string, number>();
  for (const w of workers) groups.set(`${w.backend} ${w.state}`, (groups.get(`${w.backend} ${w.state}`) ?? 0) + 1);
  return [...groups].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n} ${k}`).join(', ');
}

/** Drops what does not fit in `columns` (the line must never wrap, or the redraw leaves a trail). */
function fit(text: string, columns: number): string {
  const chars = [...text];
  return chars.length <= columns ? text : `${chars.slice(0, Math.max(0, columns - 1)).join('')}…`;
}

/** The status line for a snapshot, at most `columns` characters wide. */
export function renderStatusLine(s: Snapshot, columns = 120): string {
  const acc = s.accuracy.at(-1);
  const loss = s.loss.at(-1);
  const parts = [
    `v${s.version}`,
    acc === undefined ? 'acc -' : `acc ${acc.toFixed(3)} ${sparkline(s.accuracy)}${trend(s.accuracy)}`,
    loss === undefined ? 'loss -' : `loss ${Number.isFinite(loss) ? loss.toFixed(3) : String(loss)}${trend(s.loss)}`,
    `${s.updatesPerSec.toFixed(1)} upd/s`,
    workerSummary(s.workers),
    `PS ${s.psState}`,
    `join ${s.url}`,
  ];
  return fit(parts.join(' │ '), columns);
}

/**
 * Reads a snapshot from the in-process PS. The evaluation's figures come from its gauges
 * (server/metrics.ts); a new point is kept whenever they change, at most `keep` of them.
 */
export class Sampler {
  private readonly accuracy: number[] = [];
  private readonly loss: number[] = [];
  private lastEval = '';
  private readonly rate: [number, number][] = [];

  constructor(private readonly ps: ParameterServer, private readonly url: string, private readonly keep = 60) {}

  async sample(now = Date.now()): Promise<Snapshot> {
    const { ps } = this;
    const [acc, loss] = await Promise.all([ps.metrics.evalAccuracy.get(), ps.metrics.evalLoss.get()]);
    const a = acc.values[0]?.value ?? 0;
    const l = loss.values[0]?.value ?? 0;
    // An unset gauge reads 0; a real evaluation always has a positive loss (or NaN).
    const key = `${a}:${l}`;
    if (key !== this.lastEval && !(a === 0 && l === 0)) {
      this.lastEval = key;
      this.accuracy.push(a);
      this.loss.push(l);
      if (this.accuracy.length > this.keep) (this.accuracy.shift(), this.loss.shift());
    }
    this.rate.push([now, ps.appliedCount]);
    while (this.rate.length > 2 && now - this.rate[0]![0] > 5000) this.rate.shift();
    const [t0, n0] = this.rate[0]!;
    const updatesPerSec = now > t0 ? ((ps.appliedCount - n0) * 1000) / (now - t0) : 0;
    const workers = ps.sessions.all().map((w) => ({ backend: w.report.backend ?? '?', state: w.report.state ?? w.state }));
    return { version: ps.store.version, updatesPerSec, accuracy: this.accuracy, loss: this.loss, workers, psState: this.psState(workers, updatesPerSec), url: this.url };
  }

  private psState(workers: Snapshot['workers'], updatesPerSec: number): PsState {
    if (this.ps.strategy.wantsWeights()) return 'adopting';
    if (workers.some((w) => w.state === 'flushing')) return 'flushing';
    return updatesPerSec > 0 ? 'training' : 'idle';
  }
}

export interface Terminal {
  write(text: string): boolean;
  readonly columns?: number;
}

/** The redraw loop: one line kept at the bottom of the terminal, log lines printed above it. */
export class StatusLine {
  private line = '';
  private last: Snapshot | undefined;
  private columns = 120;
  private timer: NodeJS.Timeout | undefined;
  private drawing = false;

  constructor(private readonly term: Terminal, private readonly sampler: Sampler, private readonly everyMs = 500) {}

  start(): void {
    this.timer = setInterval(() => void this.redraw(), this.everyMs);
    this.timer.unref();
    void this.redraw();
  }

  /** Writes `text` (whole lines) above the status line. */
  print(text: string): void {
    if (!this.timer) return void this.term.write(text);
    this.term.write(`\r\x1b[2K${text}${this.line}`);
  }

  private async redraw(): Promise<void> {
    if (this.drawing || !this.timer) return;
    this.drawing = true;
    try {
      const snapshot = await this.sampler.sample();
      if (!this.timer) return;
      // A pseudo-terminal without a size (script(1) under a pipe) reports 0 columns.
      this.columns = Math.max(20, (this.term.columns || Number(process.env.COLUMNS) || 120) - 1);
      this.last = snapshot;
      this.line = renderStatusLine(snapshot, this.columns);
      this.term.write(`\r\x1b[2K${this.line}`);
    } catch {
      // A failed look (the PS closing under it) skips one redraw; the next one tries again.
    } finally {
      this.drawing = false;
    }
  }

  /** Stops redrawing and leaves the last status line on screen, the PS `down`, ended by a newline. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.last) this.term.write(`\r\x1b[2K${renderStatusLine({ ...this.last, psState: 'down' }, this.columns)}\n`);
  }
}
