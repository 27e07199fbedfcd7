/**
 * Worker sessions. A worker joins (POST /api/join) and gets a random 32-bit id and a random
 * 128-bit token; every later request presents the token, and every frame's worker id must be
 * the session's own. Ids are random rather than counted so that a restarted PS does not hand
 * out an id whose applied-push record it may later adopt. A session without a socket and
 * without requests for `idleMs` expires; its shards go to the others.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';

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
  lastSeen: number;
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
}

export class Sessions {
  private readonly byId = new Map<number, WorkerSession>();
  private readonly byToken = new Map<string, WorkerSession>();

  constructor(private readonly opts: SessionOptions) {}

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
  join(userAgent: string, now = Date.now(), resumeId?: number): WorkerSession {
    if (resumeId !== undefined && this.byId.has(resumeId)) throw new RangeError(`Sessions.join: worker ${resumeId} still has a session`);
    if (this.byId.size >= this.opts.maxWorkers) throw new TabswarmError('PS_FULL', { max: this.opts.maxWorkers });
    let id = resumeId ?? 0;
    while (id === 0 || this.byId.has(id)) id = randomBytes(4).readUInt32LE(0);
    const session: WorkerSession = {
      id,
      token: randomBytes(16).toString('hex'),
      joinedAt: now,
      userAgent: userAgent.slice(0, 200),
      lastSeen: now,
      state: 'joined',
      shards: [],
      pushes: 0,
      lastStaleness: 0,
      report: {},
    };
    this.byId.set(id, session);
    this.byToken.set(session.token, session);
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
    return session;
  }

  /** Sessions without a socket that have been idle for longer than idleMs. */
  expired(now = Date.now()): WorkerSession[] {
    return this.all().filter((s) => s.state !== 'connected' && now - s.lastSeen > this.opts.idleMs);
  }
}
