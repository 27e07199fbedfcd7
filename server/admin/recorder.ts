/**
 * The run's time series: a Snapshot every `everyMs`, reduced to one Sample row, plus the
 * failure, recovery and operator events marked on the same time axis. Health, epoch and role
 * changes are detected here from consecutive snapshots, so a node that dies without telling
 * anyone (SIGKILL) still gets its `node-down` marker.
 *
 * A recorder that starts late (the embedded PS's starts with the first look at its console)
 * first backfills the run from the PS's evaluation series (`history`), so an operator who
 * opens the console after a minute still sees the run from its first evaluation. Backfilled
 * rows carry what the series knows (version, updates, accuracy, loss); the workers' columns
 * were not observed then and are NaN (null in JSON, a gap in the charts, empty in the CSV).
 */
import type { RunEvent, EventKind, Sample, Snapshot } from '../../shared/admin-api.ts';

export interface RecorderOptions {
  /** One look at the system. */
  look: () => Promise<Snapshot>;
  /** Extra measured columns for each sample (the harness: CPU, memory, gradients computed). */
  extra?: () => Promise<Record<string, number | null>> | Record<string, number | null>;
  /** Sampling period. @default 1000 */
  everyMs?: number;
  /** Samples kept (the oldest are dropped). @default 36000, ten hours at 1 s */
  maxSamples?: number;
  /** The wall clock, ms. @default Date.now */
  clock?: () => number;
  /** The run's evaluations before the first sample, to backfill from (see above). @default none */
  history?: () => Promise<readonly HistoryPoint[]>;
}

/** One past evaluation, at wall time `at` (ms since the epoch). */
export interface HistoryPoint {
  readonly at: number;
  readonly version: number;
  readonly updates: number;
  readonly accuracy: number;
  readonly loss: number;
}

export class Recorder {
  readonly samples: Sample[] = [];
  readonly events: RunEvent[] = [];
  readonly startedAt: number;
  latest: Snapshot | null = null;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private backfilled = false;
  private appliedTotal = 0;
  /** Per node: the last updatesApplied seen, to add up applied updates across restarts. */
  private readonly lastApplied = new Map<string, number>();
  private readonly everyMs: number;
  private readonly maxSamples: number;
  private readonly clock: () => number;

  constructor(private readonly opts: RecorderOptions) {
    this.clock = opts.clock ?? Date.now;
    this.startedAt = this.clock();
    this.everyMs = opts.everyMs ?? 1000;
    this.maxSamples = opts.maxSamples ?? 36000;
  }

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Seconds since the recorder started. */
  now(at = this.clock()): number {
    return (at - this.startedAt) / 1000;
  }

  event(kind: EventKind, detail: string, node?: string): RunEvent {
    const at = this.clock();
    const e: RunEvent = { t: this.now(at), at, kind, detail, ...(node !== undefined ? { node } : {}) };
    this.events.push(e);
    return e;
  }

  /** Takes one sample now (the timer calls this; tests and the harness may too). */
  async sample(): Promise<Sample | undefined> {
    if (this.busy) return undefined;
    this.busy = true;
    try {
      const snap = await this.opts.look();
      const extra = this.opts.extra ? await this.opts.extra() : undefined;
      if (!this.backfilled) await this.backfill();
      this.detect(this.latest, snap);
      this.latest = snap;
      const up = snap.nodes.filter((n) => n.health === 'up');
      for (const n of up) {
        const prev = this.lastApplied.get(n.name);
        const cur = n.updatesApplied ?? 0;
        // A restarted node counts from zero again: everything it applied is new. Only what the
        // single PS or the chain's head applied counts: replicas apply the same updates again.
        const applied = prev === undefined ? cur : cur >= prev ? cur - prev : cur;
        if (n.role === 'single' || n.role === 'head' || snap.mode === 'single') this.appliedTotal += applied;
        this.lastApplied.set(n.name, cur);
      }
      const head = snap.nodes.find((n) => n.health === 'up' && (n.role === 'head' || n.role === 'single'));
      const versions = up.map((n) => n.version ?? 0);
      const at = this.clock();
      const s: Sample = {
        t: this.now(at),
        at,
        version: head?.version ?? (versions.length ? Math.max(...versions) : null),
        updatesApplied: this.appliedTotal,
        updatesPerSec: head?.updatesPerSec ?? up.reduce((m, n) => Math.max(m, n.updatesPerSec), 0),
        accuracy: up.length ? (snap.eval?.accuracy ?? null) : null,
        loss: up.length ? (snap.eval?.loss ?? null) : null,
        buffered: snap.workers.reduce((n, w) => n + w.buffered, 0),
        workers: snap.workers.length,
        examplesPerSec: snap.workers.reduce((n, w) => n + w.examplesPerSec, 0),
        nodesUp: up.length,
        ...(extra ? { extra } : {}),
      };
      this.samples.push(s);
      if (this.samples.length > this.maxSamples) this.samples.shift();
      return s;
    } finally {
      this.busy = false;
    }
  }

  /** Rows for the evaluations before this first sample (once; a failed look is not retried). */
  private async backfill(): Promise<void> {
    this.backfilled = true;
    const points = this.opts.history ? await this.opts.history().catch(() => []) : [];
    const before = this.clock();
    let prev: HistoryPoint | undefined;
    for (const p of points) {
      if (p.at >= before || this.samples.length >= this.maxSamples) break;
      const dt = prev ? (p.at - prev.at) / 1000 : 0;
      this.samples.push({
        t: this.now(p.at), at: p.at, version: p.version, updatesApplied: p.updates,
        updatesPerSec: prev && dt > 0 ? Math.max(0, p.updates - prev.updates) / dt : 0,
        accuracy: p.accuracy, loss: p.loss, buffered: NaN, workers: NaN, examplesPerSec: NaN, nodesUp: 1,
      });
      prev = p;
    }
  }

  private detect(prev: Snapshot | null, next: Snapshot): void {
    if (!prev) {
      const up = next.nodes.filter((n) => n.health === 'up');
      this.event('start', `${up.length} of ${next.nodes.length} node(s) up${up[0]?.version ? `, at model version ${up[0].version}` : ''}`);
      return;
    }
    for (const n of next.nodes) {
      const before = prev.nodes.find((p) => p.name === n.name);
      if (!before) continue;
      if (before.health === 'up' && n.health !== 'up') this.event('node-down', `${n.name} stopped answering`, n.name);
      if (before.health !== 'up' && n.health === 'up') this.event('node-up', `${n.name} answers again at model version ${n.version ?? '?'}`, n.name);
    }
    if (next.cluster && prev.cluster && next.cluster.epoch !== prev.cluster.epoch) {
      this.event('epoch', `epoch ${prev.cluster.epoch} -> ${next.cluster.epoch}; head ${next.cluster.head ?? 'none'}`);
    }
    const chain = (s: Snapshot) => s.nodes.filter((n) => n.role && n.health === 'up').map((n) => `${n.name}:${n.role}`).join(' ');
    if (next.mode === 'cluster' && chain(prev) !== chain(next)) this.event('chain', `chain now ${chain(next) || '(empty)'}`);
  }

  /** Samples with t > `since`, and events likewise: what the console page polls for. */
  since(t: number): { samples: Sample[]; events: RunEvent[] } {
    return { samples: this.samples.filter((s) => s.t > t), events: this.events.filter((e) => e.t > t) };
  }

  toJSON(): { startedAt: number; samples: Sample[]; events: RunEvent[] } {
    return { startedAt: this.startedAt, samples: this.samples, events: this.events };
  }

  /** One row per sample; events since the previous row go in the last column. */
  toCSV(): string {
    return samplesToCSV(this.samples, this.events);
  }
}

const BASE_COLUMNS = ['t', 'at', 'version', 'updatesApplied', 'updatesPerSec', 'accuracy', 'loss', 'buffered', 'workers', 'examplesPerSec', 'nodesUp'] as const;

export function samplesToCSV(samples: readonly Sample[], events: readonly RunEvent[]): string {
  const extraColumns = [...new Set(samples.flatMap((s) => Object.keys(s.extra ?? {})))];
  const rows = [[...BASE_COLUMNS, ...extraColumns, 'events'].join(',')];
  let prevT = -Infinity;
  for (const s of samples) {
    const evs = events.filter((e) => e.t > prevT && e.t <= s.t).map((e) => `${e.kind}${e.node ? ` ${e.node}` : ''}: ${e.detail}`);
    prevT = s.t;
    const cells = [...BASE_COLUMNS.map((c) => s[c]), ...extraColumns.map((c) => s.extra?.[c])].map(cell);
    rows.push([...cells, csvQuote(evs.join('; '))].join(','));
  }
  return `${rows.join('\n')}\n`;
}

const cell = (v: unknown): string => (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v)) ? '' : typeof v === 'number' ? String(Math.round(v * 1e6) / 1e6) : csvQuote(String(v)));
const csvQuote = (s: string): string => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
