/**
 * Admission control for a public PS: who may join, how often, and how many sessions one
 * address may hold. The join rate is @fastify/rate-limit's (registered in plugins/api.ts, with
 * its bounded LRU of addresses); the count of live sessions per address is `AddressSlots`
 * below, whose size is bounded by the session count itself (an address without a session has
 * no entry). Every refusal is a catalogued, retryable 429 with `Retry-After`.
 */
import { TabswarmError } from '../../shared/errors.ts';

/** The options that protect a public PS (declared once in server/options/server.ts). */
export interface AbuseOptions {
  /** Joins one address may make per minute; 0 = no limit. @default 120 */
  joinRate: number;
  /** Live sessions one address may hold; 0 = no limit. @default 64 */
  maxSessionsPerAddress: number;
  /** Fastify's trustProxy: 'off', 'on', a hop count, or a comma list of proxy addresses. @default 'off' */
  trustProxy: string;
  /** Other origins allowed to call /api/* (comma list or '*'). @default '' (own origin only) */
  corsOrigin: string;
  /** WebSocket ping period; a socket without a pong by the next ping is dropped. 0 = off. @default 10000 */
  wsPingMs: number;
  /** A session whose socket carries no push or pull this long ends (PS_NO_WORK). 0 = off. @default 120000 */
  workIdleMs: number;
  /** Unsent reply bytes one socket may queue before it is closed (PS_SLOW_READER). @default 16 MiB */
  maxQueuedBytes: number;
  /** An HTTP request must arrive whole within this (Node's requestTimeout). 0 = off. @default 30000 */
  requestTimeoutMs: number;
  /** An idle HTTP connection is closed after this (Fastify's connectionTimeout). 0 = off. @default 60000 */
  connectionTimeoutMs: number;
  /** A join refused for its rate is answered after this long (a tarpit for flooding clients). @default 1000 */
  refusalDelayMs: number;
  /** The applied-push record forgets workers whose last push is this many versions old. @default 1000000 */
  recordHorizon: number;
  /** Most entries of the applied-push record (the wire allows 65,536, one kept for the floor). @default 65535 */
  recordMax: number;
  /** Pushes one session may make per second (server/ps/pace.ts, PS_PUSH_RATE); 0 = no limit. @default 0 */
  pushRate: number;
  /** Pushes one session may have received and not yet answered (PS_PUSHES_IN_FLIGHT); 0 = no limit. @default 16 */
  pushesInFlight: number;
  /** Clipped or refused pushes among the last `offenderWindow` that disconnect a session (PS_OFFENDER); 0 = never. @default 24 */
  offenderStrikes: number;
  /** Pushes the offender strikes are counted over. @default 32 */
  offenderWindow: number;
  /** How long an offender's worker id and address are kept out (PS_KEPT_OUT). @default 300000 */
  keepOutMs: number;
  /** Gradients per second a worker may claim at most, however fast it says it is (aggregate/claims.ts). @default 1000 */
  maxCountRate: number;
}

/** Seconds a client refused for a full PS or a full address waits before trying again. */
export const FULL_RETRY_AFTER_SEC = 5;

/** Fastify's `trustProxy` from the option's text. */
export function trustProxyOf(text: string): boolean | number | string[] {
  const t = text.trim();
  if (t === '' || t === 'off' || t === 'false') return false;
  if (t === 'on' || t === 'true') return true;
  if (/^\d+$/.test(t)) return Number(t);
  return t.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * Holds refusals for a while before they are answered: a client looping joins with N requests
 * in flight then gets at most N answers per delay, instead of as many as the PS can parse. The
 * held replies are bounded (`max`); past that, refusals are answered at once.
 */
export class Tarpit {
  private held = 0;

  constructor(private readonly delayMs: number, private readonly max = 1024) {}

  get pending(): number {
    return this.held;
  }

  async hold(): Promise<void> {
    if (this.delayMs <= 0 || this.held >= this.max) return;
    this.held += 1;
    try {
      await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    } finally {
      this.held -= 1;
    }
  }
}

/**
 * Live sessions per client address. Entries exist only for addresses that hold at least one
 * session, so the map never has more entries than there are sessions (at most --max-workers).
 */
export class AddressSlots {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.held.size;
  }

  count(address: string): number {
    return this.held.get(address) ?? 0;
  }

  /** Throws PS_TOO_MANY_SESSIONS when the address is at its limit. */
  check(address: string): void {
    if (this.max > 0 && this.count(address) >= this.max) {
      throw new TabswarmError('PS_TOO_MANY_SESSIONS', { address, max: this.max, retryAfterSec: FULL_RETRY_AFTER_SEC });
    }
  }

  take(address: string): void {
    this.held.set(address, this.count(address) + 1);
  }

  release(address: string): void {
    const n = this.count(address) - 1;
    if (n > 0) this.held.set(address, n);
    else this.held.delete(address);
  }
}
