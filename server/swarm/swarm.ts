/**
 * A swarm of headless Chromium worker tabs (Debian's chromium through Playwright), spread over
 * M browser processes, each tab in its own context (its own IndexedDB, so its own worker). It
 * reads every tab's `window.tabswarm.status` once a second; churn closes random tabs and opens
 * new ones in their place (each a new worker, as a volunteer leaving and another arriving).
 */
import type { Browser, BrowserContext, Page } from 'playwright';
import type { WorkerStatus } from '../../client/loop.ts';
import { Backoff, sleep } from '../../shared/backoff.ts';
import { launchChromium } from '../browsers.ts';

/** A tab's reloads while its PS is down: 0.5 s, doubling up to 5 s. */
const RELOAD_BACKOFF = { minMs: 500, maxMs: 5000 } as const;

export interface SwarmOptions {
  /** The PS (or any node) the tabs open. */
  url: string;
  /** Worker tabs. @default 2 */
  workers?: number;
  /** Browser processes the tabs are spread over (round robin). @default 1 */
  browsers?: number;
  /** Backend each tab asks for: auto | webgpu | webgl | wasm | cpu. @default 'auto' */
  backend?: string;
  /** Tabs closed and reopened per minute, at random times (Poisson). @default 0 */
  churnPerMinute?: number;
  /** Status read period. @default 1000 */
  pollMs?: number;
  /** Seed of churn's choices. @default 1 */
  seed?: number;
  onConsole?: (tab: number, text: string) => void;
}

/** One tab slot: the tab in it now, and what every tab that sat in it did. */
export interface TabSlot {
  readonly slot: number;
  readonly browser: number;
  page: Page | undefined;
  context: BrowserContext | undefined;
  openedAt: number;
  status: WorkerStatus | undefined;
  /** Times the tab in this slot was closed by churn and replaced. */
  churned: number;
  /** Transitions out of `connected` into buffering/connecting/failed (PS failures as seen by the tab). */
  failuresSeen: number;
  /** Gradients computed by earlier tabs in this slot (closed by churn). */
  stepsBefore: number;
  /** Peak and running examples/s. */
  examplesPerSecSum: number;
  examplesPerSecSamples: number;
  /** The backend the slot's tabs last reported (a tab just reopened by churn has none yet). */
  lastBackend: string | null;
}

export interface SwarmSummaryRow {
  slot: number;
  browser: number;
  workerId: number | null;
  backend: string | null;
  state: string;
  examplesPerSec: number;
  steps: number;
  failuresSeen: number;
  churned: number;
  /** The tab's last error, if it had one (for a `failed` tab: why; else what it recovered from). */
  lastError?: string;
}

const FAILURE_STATES = new Set(['buffering', 'connecting', 'failed']);

export class Swarm {
  readonly slots: TabSlot[] = [];
  private readonly browsers: Browser[] = [];
  private timer: NodeJS.Timeout | undefined;
  private churnTimer: NodeJS.Timeout | undefined;
  private rng: number;
  private stopped = false;
  private churning: Promise<unknown> = Promise.resolve();
  readonly startedAt = Date.now();

  constructor(readonly opts: SwarmOptions) {
    this.rng = opts.seed ?? 1;
  }

  private random(): number {
    // mulberry32: reproducible churn for a given seed.
    this.rng = (this.rng + 0x6d2b79f5) | 0;
    let t = this.rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  async start(): Promise<void> {
    const workers = this.opts.workers ?? 2;
    const nBrowsers = Math.max(1, Math.min(this.opts.browsers ?? 1, workers));
    const backend = this.opts.backend ?? 'auto';
    // Playwright puts each browser in a process group of its own and drives it over a pipe:
    // should this process be SIGKILLed, the pipe closes and Chromium exits (test/cleanup.test.ts).
    for (let b = 0; b < nBrowsers; b++) this.browsers.push(await launchChromium({ webgpu: backend === 'webgpu' }));
    for (let i = 0; i < workers; i++) {
      const slot: TabSlot = { slot: i, browser: i % nBrowsers, page: undefined, context: undefined, openedAt: 0, status: undefined, churned: 0, failuresSeen: 0, stepsBefore: 0, examplesPerSecSum: 0, examplesPerSecSamples: 0, lastBackend: null };
      this.slots.push(slot);
      await this.open(slot);
    }
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs ?? 1000);
    this.scheduleChurn();
  }

  private async open(slot: TabSlot): Promise<void> {
    const context = await this.browsers[slot.browser]!.newContext();
    const page = await context.newPage();
    if (this.opts.onConsole) page.on('console', (msg) => this.opts.onConsole!(slot.slot, msg.text()));
    const url = new URL(this.opts.url);
    url.searchParams.set('backend', this.opts.backend ?? 'auto');
    slot.context = context;
    slot.page = page;
    slot.openedAt = Date.now();
    slot.status = undefined;
    // A tab opened while the PS is down (churn during an outage) gets an error page: retry
    // the load until the PS answers, as a volunteer would reload.
    // Jittered (shared/backoff.ts), so tabs reopened together do not reload in step.
    const backoff = new Backoff(RELOAD_BACKOFF);
    while (!this.stopped && !page.isClosed()) {
      const ok = await page.goto(url.toString(), { waitUntil: 'commit', timeout: 30000 }).then(() => true, () => false);
      if (ok) return;
      await sleep(backoff.fail());
    }
  }

  private scheduleChurn(): void {
    const rate = this.opts.churnPerMinute ?? 0;
    if (rate <= 0 || this.stopped) return;
    const waitMs = (-Math.log(1 - this.random()) * 60000) / rate;
    this.churnTimer = setTimeout(() => {
      // A churn racing stop() finds its browser closed: nothing to reopen then.
      this.churning = this.churnOne().catch(() => undefined).finally(() => this.scheduleChurn());
    }, waitMs);
  }

  /** Closes one random tab and opens a new one in its slot. */
  async churnOne(): Promise<TabSlot | undefined> {
    if (this.stopped || this.slots.length === 0) return undefined;
    const slot = this.slots[Math.floor(this.random() * this.slots.length)]!;
    slot.stepsBefore += slot.status?.steps ?? 0;
    slot.churned += 1;
    await slot.context?.close().catch(() => {});
    if (!this.stopped) await this.open(slot);
    return slot;
  }

  async poll(): Promise<void> {
    await Promise.all(this.slots.map(async (slot) => {
      const page = slot.page;
      if (!page || page.isClosed()) return;
      const s = await page.evaluate(() => (window as unknown as { tabswarm?: { status?: unknown } }).tabswarm?.status).catch(() => undefined) as WorkerStatus | undefined;
      if (!s || slot.page !== page) return;
      if (slot.status?.state === 'connected' && FAILURE_STATES.has(s.state)) slot.failuresSeen += 1;
      // Sampled whenever the tab computes, connected or buffering through an outage: a tab
      // polled only while the PS was down (a loaded machine polls seldom) still trained, and a
      // summary of 0 examples/s beside its gradients would say it did not.
      if (s.examplesPerSec > 0) {
        slot.examplesPerSecSum += s.examplesPerSec;
        slot.examplesPerSecSamples += 1;
      }
      slot.status = s;
      if (s.backend) slot.lastBackend = s.backend;
    }));
  }

  /** Gradients computed by all tabs so far (closed ones included). */
  gradientsComputed(): number {
    return this.slots.reduce((n, s) => n + s.stepsBefore + (s.status?.steps ?? 0), 0);
  }

  /** Gradients the tabs hold in their outage buffers now. */
  buffered(): number {
    return this.slots.reduce((n, s) => n + (s.status?.buffered ?? 0), 0);
  }

  counts(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const s of this.slots) {
      const state = s.status?.state ?? 'loading';
      c[state] = (c[state] ?? 0) + 1;
    }
    return c;
  }

  /** The live status line. */
  line(): string {
    const secs = Math.round((Date.now() - this.startedAt) / 1000);
    const eps = this.slots.reduce((n, s) => n + (s.status?.state === 'connected' ? s.status.examplesPerSec : 0), 0);
    const versions = this.slots.map((s) => s.status?.serverVersion ?? 0);
    const states = Object.entries(this.counts()).map(([k, v]) => `${v} ${k}`).join(', ');
    const buffered = this.buffered();
    return `swarm ${secs}s: ${this.slots.length} tabs (${states}); ${eps.toFixed(0)} examples/s; ${this.gradientsComputed()} gradients; PS version ${Math.max(0, ...versions)}; buffered ${buffered}; failures seen ${this.slots.reduce((n, s) => n + s.failuresSeen, 0)}; churned ${this.slots.reduce((n, s) => n + s.churned, 0)}`;
  }

  summary(): SwarmSummaryRow[] {
    return this.slots.map((s) => ({
      slot: s.slot,
      browser: s.browser,
      workerId: s.status?.workerId || null,
      backend: s.status?.backend || s.lastBackend,
      state: s.status?.state ?? 'loading',
      examplesPerSec: s.examplesPerSecSamples ? s.examplesPerSecSum / s.examplesPerSecSamples : 0,
      steps: s.stepsBefore + (s.status?.steps ?? 0),
      failuresSeen: s.failuresSeen,
      churned: s.churned,
      ...(s.status?.lastError ? { lastError: s.status.lastError } : {}),
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.churnTimer);
    await this.churning;
    await Promise.all(this.browsers.map((b) => b.close().catch(() => {})));
  }
}
