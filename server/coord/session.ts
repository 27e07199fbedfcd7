/**
 * The session state machine under the coordination client, shared by both backends.
 *
 * A "generation" is one backend session object (raw.ts). The keeper watches it and:
 * - reports connected / disconnected / expired at once, to listeners called synchronously;
 * - keeps its own clock, because the client library learns of an expiry only from a server
 *   it reconnects to: 2/3 of the session timeout without an answer makes the session
 *   'disconnected' and drops the connection so the library reconnects (maybe to another
 *   server); a whole session timeout without an answer makes it 'expired', since by then
 *   ZooKeeper has expired it or is about to, and a node must not act as a member any more;
 * - after an expiry opens a NEW backend session (the library's objects are unusable after
 *   expiry), and closes the old session on the server once it can reach one, so its ephemeral
 *   znodes vanish now rather than a session timeout after a server restart;
 * - binds each operation to the session it started on: expiry fails it with
 *   COORD_SESSION_EXPIRED, and every pending watch fires 'session-lost'.
 */
import { TabswarmError } from '../../shared/errors.ts';
import { RawError, type Connector, type RawSession, type RawState, type SessionCredentials } from './raw.ts';
import type { SessionEvent, SessionInfo, SessionState, WatchEvent, Watcher } from './types.ts';

export interface KeeperOptions {
  sessionTimeoutMs: number;
  connectTimeoutMs: number;
  opTimeoutMs: number;
}

interface Generation {
  readonly number: number;
  raw: RawSession;
  openedAt: number;
  id: string;
  state: SessionState;
  everConnected: boolean;
  lastHeard: number;
  /** When the library's current reconnect attempt began (see tick()). */
  dialAt: number;
  beating: boolean;
  readonly pending: Set<(err: Error) => void>;
  readonly watchers: Set<(e: WatchEvent) => void>;
  readonly previous?: string;
  readonly reap?: SessionCredentials;
}

export interface OpContext {
  op: string;
  path: string;
}

export class SessionKeeper {
  private gen: Generation | undefined;
  private readonly listeners = new Set<(e: SessionEvent) => void>();
  private readonly changed = new Set<() => void>();
  private readonly reapers = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private readonly tickMs: number;
  private lastTick = Date.now();
  private closed = false;

  constructor(private readonly connector: Connector, private readonly o: KeeperOptions) {
    this.tickMs = Math.min(100, Math.max(20, o.sessionTimeoutMs / 20));
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  get servers(): string {
    return this.connector.servers;
  }

  info(): SessionInfo {
    const g = this.gen;
    return { id: g?.id ?? '', state: this.closed ? 'closed' : g?.state ?? 'connecting', timeoutMs: g?.raw.timeoutMs() ?? this.o.sessionTimeoutMs, generation: g?.number ?? 0 };
  }

  /** The credentials of the live session (for the expiry fault), if one is open. */
  credentials(): SessionCredentials | undefined {
    return this.gen?.everConnected ? this.gen.raw.credentials() : undefined;
  }

  onEvent(listener: (e: SessionEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async connect(): Promise<void> {
    if (this.closed) throw new TabswarmError('COORD_CLOSED', { op: 'connect', path: '' });
    this.current();
    try {
      await this.until(() => this.gen!.state === 'connected', Date.now() + this.o.connectTimeoutMs, { op: 'connect', path: '' });
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /**
   * Runs one operation on the current session. `retry`: also after a connection loss, for
   * reads and other operations that are safe to repeat.
   */
  async run<T>(ctx: OpContext, retry: boolean, fn: (raw: RawSession) => Promise<T>): Promise<T> {
    if (this.closed) throw new TabswarmError('COORD_CLOSED', { ...ctx });
    // Before connect() an operation opens the session and waits for it, within its deadline.
    const gen = this.current();
    const deadline = Date.now() + this.o.opTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(this.unavailable(ctx)), this.o.opTimeoutMs)));
    late.catch(() => {});
    try {
      for (;;) {
        // Expiry (or a restarted handshake) aborts the attempt: the backend may never answer it.
        let abort!: (err: Error) => void;
        const aborted = new Promise<never>((_, reject) => (abort = reject));
        aborted.catch(() => {});
        gen.pending.add(abort);
        try {
          const value = await Promise.race([fn(gen.raw), aborted, late]);
          this.heard(gen);
          return value;
        } catch (err) {
          if (!(err instanceof RawError)) throw err;
          if (err.code === 'SESSION_EXPIRED') {
            this.expire(gen, 'ZooKeeper reported the session expired');
            throw this.expiredError(gen, ctx);
          }
          if (err.code !== 'CONNECTION_LOSS') throw err;
          if (!retry || Date.now() >= deadline) throw this.unavailable(ctx);
          await Promise.race([this.until(() => gen.state === 'connected', deadline, ctx, gen), late]);
        } finally {
          gen.pending.delete(abort);
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** A backend watch function for `watcher`, bound to the current session; `cancel` if the read failed. */
  watch(path: string, watcher: Watcher | undefined): { fn: ((e: WatchEvent) => void) | undefined; cancel(): void } {
    if (!watcher || this.closed) return { fn: undefined, cancel() {} };
    const gen = this.current();
    let fired = false;
    const fn = (e: WatchEvent) => {
      if (fired) return;
      fired = true;
      gen.watchers.delete(fn);
      watcher(e.type === 'session-lost' ? { type: 'session-lost', path } : e);
    };
    gen.watchers.add(fn);
    return { fn, cancel: () => gen.watchers.delete(fn) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    const gen = this.gen;
    if (gen) {
      gen.state = 'closed';
      for (const abort of gen.pending) abort(new TabswarmError('COORD_CLOSED', { op: 'operation', path: '' }));
      gen.pending.clear();
      gen.watchers.clear();
      this.emit({ state: 'closed', session: gen.id, generation: gen.number });
      this.notifyChanged();
      await gen.raw.close().catch(() => {});
    }
    await Promise.all([...this.reapers]);
  }

  /**
   * Attaches a second backend session object to the session `creds` names, then closes it: the
   * server ends that session. Used on a session given up on, and as the expiry fault.
   */
  async endOnServer(creds: SessionCredentials, deadlineMs: number): Promise<void> {
    const raw = this.connector.open({ sessionTimeoutMs: this.o.sessionTimeoutMs, resume: creds });
    const done = new Promise<RawState>((resolve) => {
      raw.onState((s) => s !== 'disconnected' && s !== 'connecting' && resolve(s));
      setTimeout(() => resolve('connecting'), deadlineMs).unref();
    });
    await done;
    await raw.close().catch(() => {});
  }

  private current(): Generation {
    return (this.gen ??= this.open(1));
  }

  private open(number: number, previous?: string, reap?: SessionCredentials): Generation {
    const raw = this.connector.open({ sessionTimeoutMs: this.o.sessionTimeoutMs });
    const gen: Generation = { number, raw, openedAt: Date.now(), id: '', state: 'connecting', everConnected: false, lastHeard: 0, dialAt: 0, beating: false, pending: new Set(), watchers: new Set(), ...(previous !== undefined ? { previous } : {}), ...(reap ? { reap } : {}) };
    this.attach(gen, raw);
    return gen;
  }

  private attach(gen: Generation, raw: RawSession): void {
    raw.onState((s) => {
      if (gen !== this.gen || gen.raw !== raw || this.closed) return;
      if (s === 'connected') this.onConnected(gen);
      else if (s === 'disconnected' && gen.state === 'connected') this.setState(gen, 'disconnected', 'the connection to ZooKeeper dropped');
      else if (s === 'expired') this.expire(gen, 'ZooKeeper reported the session expired');
      else if (s === 'closed') this.expire(gen, 'ZooKeeper closed the connection');
    });
  }

  private onConnected(gen: Generation): void {
    gen.lastHeard = Date.now();
    if (!gen.everConnected) {
      gen.everConnected = true;
      gen.id = gen.raw.credentials().id;
      gen.state = 'connected';
      this.emit({ state: 'connected', session: gen.id, generation: gen.number, ...(gen.previous !== undefined ? { previous: gen.previous } : {}) });
      this.notifyChanged();
      if (gen.reap) this.track(this.endOnServer(gen.reap, gen.raw.timeoutMs()));
    } else if (gen.state === 'disconnected') {
      this.setState(gen, 'connected');
    }
  }

  private setState(gen: Generation, state: SessionState, reason?: string): void {
    gen.state = state;
    if (state === 'disconnected') gen.dialAt = Date.now();
    this.emit({ state, session: gen.id, generation: gen.number, ...(reason ? { reason } : {}) });
    this.notifyChanged();
  }

  private heard(gen: Generation): void {
    gen.lastHeard = Date.now();
    if (gen.state === 'disconnected' && gen.raw.state() === 'connected') this.setState(gen, 'connected');
  }

  private expire(gen: Generation, reason: string): void {
    if (gen !== this.gen || this.closed || gen.state === 'expired') return;
    // The server already ended a session it reported expired; one we gave up on, we end there.
    const creds = gen.raw.state() === 'expired' ? undefined : gen.raw.credentials();
    gen.state = 'expired';
    // Operations from here on, including any a listener starts, go to the new session.
    this.gen = this.open(gen.number + 1, gen.id, creds);
    // Fence first: listeners hear of it before anything else happens.
    this.emit({ state: 'expired', session: gen.id, generation: gen.number, reason });
    for (const abort of gen.pending) abort(this.expiredError(gen, { op: 'operation', path: '' }, reason));
    gen.pending.clear();
    for (const fire of [...gen.watchers]) fire({ type: 'session-lost', path: '' });
    this.notifyChanged();
    void gen.raw.close().catch(() => {});
  }

  private tick(): void {
    const now = Date.now();
    // After a stalled event loop, let pending answers be read before judging ZooKeeper silent.
    const stalled = now - this.lastTick > 3 * this.tickMs;
    this.lastTick = now;
    const gen = this.gen;
    if (!gen || this.closed || stalled) return;
    const timeout = gen.raw.timeoutMs();
    if (!gen.everConnected) {
      // A handshake that hangs (a stopped server accepts TCP but never answers): start over.
      if (now - gen.openedAt > this.o.sessionTimeoutMs) {
        const old = gen.raw;
        gen.raw = this.connector.open({ sessionTimeoutMs: this.o.sessionTimeoutMs });
        gen.openedAt = now;
        this.attach(gen, gen.raw);
        for (const abort of gen.pending) abort(new RawError('CONNECTION_LOSS', 'reconnecting'));
        void old.close().catch(() => {});
      }
      return;
    }
    const silent = now - gen.lastHeard;
    if (silent >= timeout) {
      this.expire(gen, `no answer from ZooKeeper for ${silent} ms; the session timeout is ${timeout} ms`);
    } else if (silent >= (2 * timeout) / 3 && gen.state === 'connected') {
      this.setState(gen, 'disconnected', `no answer from ZooKeeper for ${silent} ms`);
      gen.raw.dropConnection();
    } else if (gen.state === 'disconnected' && gen.raw.state() !== 'connected' && now - gen.dialAt >= Math.max(1000, timeout / 5)) {
      // The library puts no deadline on a reconnect once TCP is up: a server that accepts the
      // socket but never answers the handshake (a JVM still starting, a blackholed path) holds
      // the attempt until the session is lost. Start the attempt over, a few times per timeout.
      gen.dialAt = now;
      gen.raw.dropConnection();
    } else if (silent >= timeout / 3 && gen.state === 'connected' && !gen.beating) {
      gen.beating = true;
      gen.raw.exists('/').then(() => this.heard(gen), () => {}).finally(() => (gen.beating = false));
    }
  }

  private until(ready: () => boolean, deadline: number, ctx: OpContext, gen?: Generation): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.closed) return finish(new TabswarmError('COORD_CLOSED', { ...ctx }));
        if (gen && gen !== this.gen) return finish(this.expiredError(gen, ctx));
        if (ready()) return finish();
      };
      const timer = setTimeout(() => finish(this.unavailable(ctx)), Math.max(0, deadline - Date.now()));
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.changed.delete(check);
        if (err) reject(err);
        else resolve();
      };
      this.changed.add(check);
      check();
    });
  }

  private notifyChanged(): void {
    for (const check of [...this.changed]) check();
  }

  private emit(e: SessionEvent): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        // A listener's bug must not stop the state machine; it still surfaces.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  private track(p: Promise<void>): void {
    const t = p.catch(() => {}).finally(() => this.reapers.delete(t));
    this.reapers.add(t);
  }

  private unavailable(ctx: OpContext): TabswarmError {
    return new TabswarmError('COORD_UNAVAILABLE', { ...ctx, servers: this.connector.servers, ms: this.o.opTimeoutMs });
  }

  private expiredError(gen: Generation, ctx: OpContext, reason = 'it ended while the operation was outstanding'): TabswarmError {
    return new TabswarmError('COORD_SESSION_EXPIRED', { session: gen.id, reason, op: `${ctx.op} ${ctx.path}`.trim() });
  }
}
