/**
 * What a push claims about itself, checked against what the PS knows. The base version feeds
 * the stale-update rule (a lie ahead makes a stale gradient look fresh); the count feeds the
 * rule's scale (a flush claiming few gradients for a large sum takes a large step).
 *
 * Base version: the PS remembers the highest version it sent on each session (the version at
 * join, every pull, every ack). A claim ahead of it is refused (PS_CLAIM_AHEAD). Two honest
 * cases get their weights elsewhere and are bounded by the PS's current version instead: relay
 * (signed weights from peers) and chains (strict reads from the tail); and a resumed session
 * may flush a buffer computed on an earlier session's weights until it pulls once.
 * Count: at most `maxCount` gradients per push or flush (PS_COUNT_TOO_LARGE), and in total at
 * most what the worker could have computed: a credit per worker that grows by `rate x elapsed`
 * (never past `maxCount`) and that each accepted claim spends, plus COUNT_SLACK per claim; what a
 * claim leaves over is kept only up to the last interval's earnings (no saving up). rate
 * is 8 x the worker's measured rate (gradients claimed per second over its recent pushes, once
 * RATE_SAMPLES were seen), never above `maxRate`; honest outage compute runs faster than the
 * push loop measured (no round trips), hence the factor 8. A credit, not the time since the
 * last push: after an outage a worker sends its one unacknowledged push and then, a few ms
 * later, the flush of what it computed meanwhile; both were earned over the whole outage.
 * A worker this process has no push of (a restarted PS, a chain's new head, a new worker)
 * starts with the whole `maxCount` of credit: its flush may hold an outage the PS never saw.
 * The history is per worker id (it survives resumed sessions), bounded by HISTORY_MAX, least
 * recently pushing first out.
 */
import { TabswarmError } from '../../../shared/errors.ts';

export interface ClaimLimits {
  /** Most gradients one push or flush may claim. @default 100000 */
  maxCount: number;
  /** Bound claims by what this session was sent (true) or by the current version (false: relay, chains). @default true */
  sessionBound: boolean;
  /** Most gradients per second a worker may claim, however fast it measured. @default 1000 */
  maxRate?: number;
}

/** Gradients a claim may hold beyond rate x elapsed (timer granularity, a burst after a pull). */
export const COUNT_SLACK = 64;
/** Pushes measured before the worker's own rate (not only `maxRate`) bounds its claims. */
export const RATE_SAMPLES = 8;
/** Workers whose push history is kept. */
export const HISTORY_MAX = 65536;

interface History {
  /** Time of the last accepted claim (ms). */
  at: number;
  /** Exponential moving average of gradients per second. */
  rate: number;
  samples: number;
  /** Gradients earned and not yet claimed, as of `at`. */
  credit: number;
}

interface Sent {
  version: number;
  /** A resumed session before its first pull: its flush may predate this session. */
  resumed: boolean;
}

export class ClaimCheck {
  /** Keyed by the session object, so it is bounded by the live sessions and needs no cleanup. */
  private readonly sent = new WeakMap<object, Sent>();

  private readonly history = new Map<number, History>();

  constructor(public limits: ClaimLimits) {}

  /** Most gradients `worker` may claim now (`maxCount` when this PS has no push of it). */
  countBound(worker: number, now = Date.now()): number {
    const h = this.history.get(worker);
    if (!h) return this.limits.maxCount;
    return Math.min(this.limits.maxCount, Math.ceil(this.credit(h, now)) + COUNT_SLACK);
  }

  /** What `h` earns from its last claim to `now`: 8 x its measured rate (or `maxRate`) x the time. */
  private earned(h: History, now: number): number {
    const rate = h.samples >= RATE_SAMPLES ? Math.min(this.limits.maxRate ?? 1000, 8 * h.rate) : (this.limits.maxRate ?? 1000);
    return (rate * Math.max(0, now - h.at)) / 1000;
  }

  /** The credit of `h` at `now`: what it had, plus what it earned since, at most `maxCount`. */
  private credit(h: History, now: number): number {
    return Math.min(this.limits.maxCount, h.credit + this.earned(h, now));
  }

  /** Records an accepted claim of `count` gradients (called once the push is applied). */
  counted(worker: number, count: number, now = Date.now()): void {
    const h = this.history.get(worker);
    this.history.delete(worker);
    if (!h) {
      this.history.set(worker, { at: now, rate: 0, samples: 0, credit: Math.max(0, this.limits.maxCount - count) });
    } else {
      const sample = (1000 * count) / Math.max(1, now - h.at);
      const rate = h.samples === 0 ? sample : 0.8 * h.rate + 0.2 * sample;
      // The slack is per claim, not earned: it never adds to the credit. What a claim leaves is
      // carried over only up to what the last interval earned: a worker that claims 1 at every
      // push while its credit grows at 8x its rate would otherwise save up the whole `maxCount`
      // for one step (a patient liar). An outage's push and flush still share what the outage
      // earned: the push leaves it, the flush follows within ms.
      const credit = Math.max(0, Math.min(this.credit(h, now) - count, this.earned(h, now)));
      this.history.set(worker, { at: now, rate, samples: h.samples + 1, credit });
    }
    if (this.history.size > HISTORY_MAX) this.history.delete(this.history.keys().next().value!);
  }

  joined(session: object, version: number, resumed: boolean): void {
    this.sent.set(session, { version, resumed });
  }

  /** A version told to the session: a pull's weights, or an ack. */
  served(session: object, version: number, pulled: boolean): void {
    const s = this.sent.get(session);
    if (!s) return void this.sent.set(session, { version, resumed: false });
    if (version > s.version) s.version = version;
    if (pulled) s.resumed = false;
  }

  /** Throws PS_CLAIM_AHEAD or PS_COUNT_TOO_LARGE; `current` is the store's version. */
  check(session: object, worker: number, baseVersion: number, count: number, current: number, now = Date.now()): void {
    const max = this.countBound(worker, now);
    if (count > max) throw new TabswarmError('PS_COUNT_TOO_LARGE', { worker, count, max });
    const s = this.sent.get(session);
    if (s?.resumed) return;
    const bound = this.limits.sessionBound && s ? s.version : current;
    if (baseVersion > bound) throw new TabswarmError('PS_CLAIM_AHEAD', { worker, claimed: baseVersion, sent: bound });
  }
}
