/**
 * The worker page's live chart of the run's test accuracy, drawn with uPlot like the admin
 * console (public/admin/src/charts.ts). The PS keeps the series (GET /api/series); the page asks
 * only for the points after the last one it holds (?since=T), so a tab open for hours polls a
 * few bytes, and keeps at most MAX_POINTS of them.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { SeriesResponseSchema, type SeriesPoint } from '../../shared/api.ts';
import { parseAs } from '../../shared/validate.ts';

const MAX_POINTS = 2000;

export interface AccuracyChartOptions {
  /** Poll period. @default 3000 */
  everyMs?: number;
  /** Called with the latest point after each poll that brought new ones. */
  onPoint?: (p: SeriesPoint, all: readonly SeriesPoint[]) => void;
}

export class AccuracyChart {
  readonly points: SeriesPoint[] = [];
  private readonly plot: uPlot;
  private timer: number | undefined;
  private since = -1;

  constructor(private readonly box: HTMLElement, private readonly opts: AccuracyChartOptions = {}) {
    this.plot = new uPlot({
      width: this.width(),
      height: 160,
      legend: { show: false },
      scales: { x: { time: false }, y: { range: [0, 1] } },
      axes: [{ label: 'seconds since the PS started', size: 40 }, { size: 52, values: (_u, ticks) => ticks.map((v) => `${Math.round(v * 100)}%`) }],
      series: [{}, { label: 'test accuracy', stroke: '#1f77b4', width: 2 }],
    }, [[], []], box);
    new ResizeObserver(() => this.plot.setSize({ width: this.width(), height: 160 })).observe(box);
  }

  start(): void {
    void this.poll();
    this.timer = window.setInterval(() => void this.poll(), this.opts.everyMs ?? 3000);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private width(): number {
    return Math.max(200, Math.floor(this.box.clientWidth || 320));
  }

  private async poll(): Promise<void> {
    try {
      const res = await fetch(`/api/series?since=${this.since}`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) return;
      const fresh = parseAs(SeriesResponseSchema, await res.json(), 'GET /api/series').points.filter((p) => p.t > this.since);
      if (!fresh.length) return;
      this.points.push(...fresh);
      if (this.points.length > MAX_POINTS) this.points.splice(0, this.points.length - MAX_POINTS);
      this.since = this.points.at(-1)!.t;
      this.plot.setData([this.points.map((p) => p.t), this.points.map((p) => p.accuracy)]);
      this.opts.onPoint?.(this.points.at(-1)!, this.points);
    } catch {
      // The PS is unreachable (an outage): the chart waits, the worker buffers.
    }
  }
}
