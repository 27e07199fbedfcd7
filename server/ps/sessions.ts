/**
 * Worker sessions. A worker joins (POST /api/join) and gets a random 32-bit id and a random
 * 128-bit token; every later request presents the token, and every frame's worker id must be
 * the session's own. Ids are random rather than counted so that a restarted PS does not hand
 * out an id whose applied-push record it may later adopt. A session without a socket and
 * without requests for `idleMs` expires; its shards go to the others. A session that holds a
 * socket but sends no push or pull for `workIdleMs` expires too (PS_NO_WORK): an open socket
 * alone does not keep a slot. Live sessions per client address are bounded (AddressSlots).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';
import { AddressSlots, FULL_RETRY_AFTER_SEC } from './admission.ts';

export type WorkerState = 'joined' | 'connected' | 'disconnected';

export interface WorkerReport {
  backend?: string;
  examplesPerSec?: number;
  steps?: number;
  numTensors?: number;
  loss?: number;
  state?: string;
}

export interface WorkerSession {
  readonly id: number;
  readonly token: string;
  readonly joinedAt: number;
  readonly userAgent: string;
  /** The client address the session was joined from (per-address limits). */
  readonly address: string;
  lastSeen: number;
  /** Last push or pull (WebSocket or HTTP); an open socket alone does not count. */
  lastWork: number;
  /**
   * Whether the store held (or now holds) an applied-push mark of this worker when the session
   * began or since: its mark disappearing later means the record forgot it (PS_RECORD_EXPIRED).
   */
  marked: boolean;
  /** Joined under an id it held before (resume); its mark may be one the record forgot. */
  resumed: boolean;
  state: WorkerState;
  shards: number[];
  pushes: number;
  lastStaleness: number;
  report: WorkerReport;
  /** Closes the worker's live socket, if it has one. */
  closeSocket?: (code: number, reason: string) => void;
}

export interface SessionOptions {
  /** Largest number of concurrent workers. @default 1024 */
  maxWorkers: number;
  /** A session with no socket and no request for this long expires. @default 30000 */
  idleMs: number;
  /** A session with a socket but no push or pull for this long expires; 0 = never. @default 120000 */
  workIdleMs?: number;
  /** Live sessions one address may hold; 0 = no limit. @default 0 here; the PS sets --max-sessions-per-address */
  maxSessionsPerAddress?: number;
}

export class Sessions {
  private readonly byId = new Map<number, WorkerSession>();
  private readonly byToken = new Map<string, WorkerSession>();
  private readonly slots: AddressSlots;

  constructor(private readonly opts: SessionOptions) {
    this.slots = new AddressSlots(opts.maxSessionsPerAddress ?? 0);
  }

  /** Distinct addresses holding sessions (never more than the sessions). */
  get addresses(): number {
    return this.slots.size;
  }

  /** Throws the retryable refusal a join from `address` would get now, if any. */
  admit(address: string): void {
    if (this.byId.size >= this.opts.maxWorkers) throw new TabswarmError('PS_FULL', { max: this.opts.maxWorkers, retryAfterSec: FULL_RETRY_AFTER_SEC });
    this.slots.check(address);
  }

  get size(): number {
    return this.byId.size;
  }

  all(): WorkerSession[] {
    return [...this.byId.values()];
  }

  get(id: number): WorkerSession | undefined {
    return this.byId.get(id);
  }

  /**
   * A new session, under a fresh random id or, with `resumeId`, under an id the caller has
   * proven it held (the PS checks the id tag first and ends any live session with that id).
   */
  join(userAgent: string, now = Date.now(), resumeId?: number, address = ''): WorkerSession {
    if (resumeId !== undefined && this.byId.has(resumeId)) throw new RangeError(`Sessions.join: worker ${resumeId} still has a session`);
    this.admit(address);
    let id = resumeId ?? 0;
    while (id === 0 || this.byId.has(id)) id = randomBytes(4).readUInt32LE(0);
    const session: WorkerSession = {
      id,
      token: randomBytes(16).toString('hex'),
      joinedAt: now,
      userAgent: userAgent.slice(0, 200),
      address,
      lastSeen: now,
      lastWork: now,
      marked: false,
      resumed: false,
      state: 'joined',
      shards: [],
      pushes: 0,
      lastStaleness: 0,
      report: {},
    };
    this.byId.set(id, session);
    this.byToken.set(session.token, session);
    this.slots.take(address);
    return session;
  }

  /** The session a token belongs to; PS_NO_SESSION when there is none. */
  authenticate(token: string | undefined, now = Date.now()): WorkerSession {
    const session = token ? this.byToken.get(token) : undefined;
    // Compare in constant time so a token cannot be guessed byte by byte from timings.
    if (!session || !timingSafeEqual(Buffer.from(session.token), Buffer.from(token!))) throw new TabswarmError('PS_NO_SESSION');
    session.lastSeen = now;
    return session;
  }

  remove(id: number): WorkerSession | undefined {
    const session = this.byId.get(id);
    if (!session) return undefined;
    this.byId.delete(id);
    this.byToken.delete(session.token);
    this.slots.release(session.address);
    return session;
  }

  /**
   * Sessions to end now, with why: without a socket and silent for longer than idleMs, or with
   * a socket but no push or pull for longer than workIdleMs. One pass, O(sessions).
   */
  expired(now = Date.now()): { session: WorkerSession; why: 'idle' | 'no-work' }[] {
    const out: { session: WorkerSession; why: 'idle' | 'no-work' }[] = [];
    const workIdle = this.opts.workIdleMs ?? 0;
    for (const s of this.byId.values()) {
      if (s.state !== 'connected' && now - s.lastSeen > this.opts.idleMs) out.push({ session: s, why: 'idle' });
      else if (workIdle > 0 && now - s.lastWork > workIdle) out.push({ session: s, why: 'no-work' });
    }
    return out;
  }
}
