/**
 * The one exponential backoff of the project: the worker's reconnect, the page's first model
 * fetch, the chain's link retries and the swarm's tab reopening all take their delays from here.
 *
 * delay(n) = min(maxMs, minMs * 2^(n-1)) * (1 - jitter + 2 * jitter * random()), for n >= 1.
 * Jitter spreads a crowd of clients that lost the same server, so they do not come back in step.
 * Per colyseus and y-websocket, the failure count resets only after a successful sync, not on a
 * socket open: callers call `reset()` when the exchange they retry has really succeeded.
 */
export interface BackoffOptions {
  /** First delay in ms. @default 250 */
  readonly minMs?: number;
  /** Cap on the delay in ms (before jitter). @default 2000 */
  readonly maxMs?: number;
  /** Delays are scaled by a uniform factor in [1 - jitter, 1 + jitter]. @default 0.5 */
  readonly jitter?: number;
  /** Source of randomness in [0, 1). @default Math.random */
  readonly random?: () => number;
}

export const BACKOFF_DEFAULTS = { minMs: 250, maxMs: 2000, jitter: 0.5 } as const;

/** The delay before attempt `failures + 1` after `failures` consecutive failures (>= 1). */
export function backoffDelay(failures: number, o: BackoffOptions = {}): number {
  const min = o.minMs ?? BACKOFF_DEFAULTS.minMs;
  const max = o.maxMs ?? BACKOFF_DEFAULTS.maxMs;
  const jitter = o.jitter ?? BACKOFF_DEFAULTS.jitter;
  const random = o.random ?? Math.random;
  const base = Math.min(max, min * 2 ** Math.min(Math.max(failures, 1) - 1, 30));
  return base * (1 - jitter + 2 * jitter * random());
}

/** A failure counter with its delays: `fail()` returns the next delay, `reset()` after success. */
export class Backoff {
  private n = 0;
  constructor(private readonly o: BackoffOptions = {}) {}
  /** Consecutive failures since the last reset. */
  get failures(): number {
    return this.n;
  }
  /** Records a failure and returns how long to wait before the next attempt. */
  fail(): number {
    this.n += 1;
    return backoffDelay(this.n, this.o);
  }
  reset(): void {
    this.n = 0;
  }
}

/** Sleeps `ms`, or rejects early with the signal's reason when it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
