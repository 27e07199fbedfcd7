/**
 * How fast one session may push, and what happens to a session that keeps misbehaving.
 *
 * Pace: a token bucket per session (`pushRate` pushes per second, a burst of one second's worth)
 * and a bound on its pushes in flight (received and not yet acknowledged or refused). The excess
 * is refused with a retryable code (PS_PUSH_RATE, PS_PUSHES_IN_FLIGHT); on a WebSocket that
 * closes the socket, the worker reconnects with backoff and resends, and the applied-push record
 * keeps that exactly once. The in-flight count is taken where a frame arrives (ws.ts counts a
 * frame queued behind others on its socket), so a client cannot hide a backlog in the queue.
 *
 * Offenders: each push is a strike when the aggregator cut it (past its warm-up: service.ts),
 * the output guard refused its step, or the PS refused it (a claim, the pace). A session with `strikes` strikes among its last `window` pushes is disconnected
 * (PS_OFFENDER), its shards go to the others, and its worker id and address are kept out for
 * `keepOutMs` (joins refused with PS_KEPT_OUT). Per-session state lives in WeakMaps keyed by the
 * session (bounded by the live sessions); the keep-out list is bounded by KEEP_OUT_MAX.
 */
import { TabswarmError } from '../../shared/errors.ts';

export interface PaceLimits {
  /** Pushes one session may make per second (burst: one second's worth); 0 = no limit. @default 0 */
  pushRate: number;
  /** Pushes one session may have received and not yet answered; 0 = no limit. @default 16 */
  pushesInFlight: number;
}

export interface OffenderLimits {
  /** Clipped or refused pushes among the last `window` that disconnect a session; 0 = never. @default 24 */
  strikes: number;
  /** Pushes the strikes are counted over. @default 32 */
  window: number;
  /** How long a disconnected offender's worker id and address may not join again. @default 300000 */
  keepOutMs: number;
}

/** One kept-out worker, as the console, /api/status and /metrics show it. */
export interface KeptOut {
  readonly workerId: number;
  readonly address: string;
  readonly reason: string;
  readonly at: number;
  readonly until: number;
}

/** Most kept-out entries held; past it the one ending first is dropped. */
export const KEEP_OUT_MAX = 4096;

interface Bucket {
  tokens: number;
  at: number;
  inFlight: number;
}

export class Pace {
  private readonly buckets = new WeakMap<object, Bucket>();

  constructor(public limits: PaceLimits = { pushRate: 0, pushesInFlight: 16 }) {}

  /** Counts one arriving push; throws the retryable refusal when it is one too many. */
  arrive(session: object, worker: number, now = performance.now()): void {
    let b = this.buckets.get(session);
    const { pushRate, pushesInFlight } = this.limits;
    if (!b) this.buckets.set(session, (b = { tokens: Math.max(1, pushRate), at: now, inFlight: 0 }));
    if (pushesInFlight > 0 && b.inFlight >= pushesInFlight) throw new TabswarmError('PS_PUSHES_IN_FLIGHT', { worker, max: pushesInFlight });
    if (pushRate > 0) {
      b.tokens = Math.min(Math.max(1, pushRate), b.tokens + ((now - b.at) / 1000) * pushRate);
      b.at = now;
      if (b.tokens < 1) throw new TabswarmError('PS_PUSH_RATE', { worker, max: pushRate, retryAfterSec: 1 });
      b.tokens -= 1;
    }
    b.inFlight += 1;
  }

  /** The push `arrive` counted was answered (acknowledged or refused). */
  done(session: object): void {
    const b = this.buckets.get(session);
    if (b && b.inFlight > 0) b.inFlight -= 1;
  }
}

interface Strikes {
  /** 1 for a clipped or refused push, 0 otherwise, over the last `window` pushes. */
  ring: Uint8Array;
  next: number;
  count: number;
}

export class Offenders {
  private readonly strikes = new WeakMap<object, Strikes>();
  /** Keyed `w:<id>` and `a:<address>`; insertion order is keep-out order. */
  private readonly out = new Map<string, KeptOut>();
  /** Sessions disconnected as offenders, by reason (tabswarm_offenders_total). */
  readonly disconnected = new Map<string, number>();

  constructor(public limits: OffenderLimits = { strikes: 24, window: 32, keepOutMs: 300000 }) {}

  /**
   * Records one push's outcome; returns true when this push makes the session an offender.
   * `struck` is a clipped or refused push.
   */
  record(session: object, struck: boolean): boolean {
    const { strikes, window } = this.limits;
    if (strikes <= 0) return false;
    let s = this.strikes.get(session);
    if (!s || s.ring.length !== window) this.strikes.set(session, (s = { ring: new Uint8Array(window), next: 0, count: 0 }));
    s.count += (struck ? 1 : 0) - s.ring[s.next]!;
    s.ring[s.next] = struck ? 1 : 0;
    s.next = (s.next + 1) % window;
    if (s.count < strikes) return false;
    this.strikes.delete(session); // judged once: the caller disconnects it
    return true;
  }

  /** Strikes the session holds now (the console's column). */
  count(session: object): number {
    return this.strikes.get(session)?.count ?? 0;
  }

  /** Keeps the worker id and the address out for `keepOutMs`. */
  keepOut(workerId: number, address: string, reason: string, now = Date.now()): KeptOut {
    const entry: KeptOut = { workerId, address, reason, at: now, until: now + this.limits.keepOutMs };
    this.disconnected.set(reason, (this.disconnected.get(reason) ?? 0) + 1);
    for (const key of [`w:${workerId}`, ...(address ? [`a:${address}`] : [])]) {
      this.out.delete(key);
      this.out.set(key, entry);
    }
    while (this.out.size > KEEP_OUT_MAX) this.out.delete(this.out.keys().next().value!);
    return entry;
  }

  /** Throws PS_KEPT_OUT when the worker id (a resume) or the address is kept out. */
  check(address: string, workerId: number | undefined, now = Date.now()): void {
    for (const key of [...(workerId !== undefined ? [`w:${workerId}`] : []), `a:${address}`]) {
      const e = this.out.get(key);
      if (!e) continue;
      if (e.until <= now) {
        this.out.delete(key);
        continue;
      }
      throw new TabswarmError('PS_KEPT_OUT', { worker: e.workerId, reason: e.reason, retryAfterSec: Math.ceil((e.until - now) / 1000) });
    }
  }

  /** The workers kept out now, newest first (expired entries are dropped on the way). */
  list(now = Date.now()): KeptOut[] {
    const seen = new Set<KeptOut>();
    for (const [key, e] of this.out) {
      if (e.until <= now) this.out.delete(key);
      else seen.add(e);
    }
    return [...seen].reverse();
  }
}
