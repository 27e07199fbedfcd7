/**
 * The in-memory backend: a client session over a MemoryZooKeeper (memory-server.ts), behaving
 * as node-zookeeper-client does (zookeeper.ts): it reconnects by itself after a drop, queues
 * requests while disconnected, fails the ones outstanding on a drop with CONNECTION_LOSS, pings
 * every third of the session timeout, learns of an expiry only when it reattaches, and is
 * unusable once expired. Answers and notifications arrive asynchronously, in order.
 */
import { RawError, type Connector, type DigestAuth, type RawAcl, type RawEvent, type RawSession, type RawStat, type RawState, type SessionCredentials } from './raw.ts';
import { MemoryZooKeeper, type MemoryConnection } from './memory-server.ts';

export function memoryConnector(server: MemoryZooKeeper, options: { spinDelayMs?: number } = {}): Connector {
  return {
    kind: 'memory',
    servers: 'memory',
    open: ({ sessionTimeoutMs, resume, auth }) => new MemorySession(server, sessionTimeoutMs, options.spinDelayMs ?? 50, resume, auth),
  };
}

type Kind = 'data' | 'exist' | 'child';
type Delivery = { run: () => void; fail?: () => void };

class Connection implements MemoryConnection {
  private readonly queue: Delivery[] = [];
  private scheduled = false;
  dropped = false;

  constructor(private readonly session: MemorySession) {}

  event(e: RawEvent): void {
    this.push({ run: () => this.session.dispatch(e) });
  }
  push(d: Delivery): void {
    this.queue.push(d);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      for (let next = this.queue.shift(); next; next = this.queue.shift()) next.run();
    });
  }
  drop(reason: string): void {
    if (this.dropped) return;
    this.dropped = true;
    // Notifications already sent still arrive; answers not yet read are lost with the socket.
    for (const d of this.queue.splice(0)) (d.fail ?? d.run)();
    this.session.onDrop(this, reason);
  }
}

class MemorySession implements RawSession {
  private current: RawState = 'connecting';
  private readonly listeners: ((s: RawState) => void)[] = [];
  private conn: Connection | undefined;
  private creds: SessionCredentials | undefined;
  private negotiated: number | undefined;
  private waiting: (() => void)[] = [];
  private retry: NodeJS.Timeout | undefined;
  private ping: NodeJS.Timeout | undefined;
  private readonly watchers: Record<Kind, Map<string, Set<(e: RawEvent) => void>>> = { data: new Map(), exist: new Map(), child: new Map() };

  constructor(private readonly server: MemoryZooKeeper, private readonly requestedTimeoutMs: number, private readonly spinDelayMs: number, resume?: SessionCredentials, private readonly auth?: DigestAuth) {
    this.creds = resume;
    queueMicrotask(() => this.attempt());
  }

  state(): RawState {
    return this.current;
  }
  onState(listener: (state: RawState) => void): void {
    this.listeners.push(listener);
  }
  credentials(): SessionCredentials {
    return this.creds ?? { id: '0'.repeat(16), password: '0'.repeat(32) };
  }
  timeoutMs(): number {
    return this.negotiated ?? this.requestedTimeoutMs;
  }
  dropConnection(): void {
    const conn = this.conn;
    if (!conn || !this.creds) return;
    this.server.disconnect(this.creds.id, conn);
    conn.drop('client');
  }

  async close(): Promise<void> {
    if (this.current === 'closed' || this.current === 'expired') return;
    const conn = this.conn;
    // Like the library: the close request reaches the server only over a live connection.
    if (conn && this.current === 'connected' && this.creds) {
      this.conn = undefined;
      this.server.closeSession(this.creds.id, conn);
    }
    this.finish('closed');
  }

  private set(state: RawState): void {
    if (this.current === state || this.current === 'expired' || this.current === 'closed') return;
    this.current = state;
    for (const l of this.listeners) l(state);
  }

  private finish(state: 'expired' | 'closed'): void {
    clearTimeout(this.retry);
    clearInterval(this.ping);
    this.set(state);
    for (const w of this.waiting.splice(0)) w();
  }

  private attempt(): void {
    if (this.current === 'closed' || this.current === 'expired') return;
    const conn = new Connection(this);
    const r = this.server.attach(conn, this.requestedTimeoutMs, this.creds, this.auth);
    if (!r.ok) {
      if (r.reason === 'expired') return this.finish('expired');
      this.retry = setTimeout(() => this.attempt(), Math.random() * this.spinDelayMs);
      return;
    }
    this.conn = conn;
    this.creds = { id: r.id, password: r.password };
    this.negotiated = r.timeoutMs;
    clearInterval(this.ping);
    this.ping = setInterval(() => this.send(() => this.server.exists(r.id, '/', false)).catch(() => {}), r.timeoutMs / 3);
    this.set('connected');
    for (const w of this.waiting.splice(0)) w();
  }

  onDrop(conn: Connection, _reason: string): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    clearInterval(this.ping);
    if (this.current === 'closed' || this.current === 'expired') return;
    this.set('disconnected');
    this.retry = setTimeout(() => this.attempt(), 0);
  }

  dispatch(e: RawEvent): void {
    const kinds: Kind[] = e.type === 'children' ? ['child'] : e.type === 'deleted' ? ['data', 'child'] : ['data', 'exist'];
    for (const kind of kinds) {
      const fns = this.watchers[kind].get(e.path);
      this.watchers[kind].delete(e.path);
      for (const fn of fns ?? []) fn(e);
    }
  }

  private register(kind: Kind, path: string, fn: ((e: RawEvent) => void) | undefined): void {
    if (!fn) return;
    let fns = this.watchers[kind].get(path);
    if (!fns) this.watchers[kind].set(path, (fns = new Set()));
    fns.add(fn);
  }

  /** Sends now if connected, else once (re)connected; fails as the library does. */
  private async send<T>(op: () => T, onAnswer?: (value: T) => void): Promise<T> {
    while (this.current !== 'connected') {
      if (this.current === 'expired') throw new RawError('SESSION_EXPIRED', 'session expired');
      if (this.current === 'closed') throw new RawError('CONNECTION_LOSS', 'client closed');
      await new Promise<void>((r) => this.waiting.push(r));
    }
    const conn = this.conn!;
    const id = this.creds!.id;
    return new Promise<T>((resolve, reject) => {
      let outcome: () => void;
      try {
        const value = this.server.request(id, conn, op);
        // Watches are registered as the answer is read, before any later notification.
        outcome = () => {
          onAnswer?.(value);
          resolve(value);
        };
      } catch (err) {
        outcome = () => reject(err);
      }
      conn.push({ run: outcome, fail: () => reject(new RawError('CONNECTION_LOSS', 'connection lost with the request outstanding')) });
    });
  }

  create(path: string, data: string, mode: 'persistent' | 'ephemeral' | 'ephemeral-sequential', acl?: readonly RawAcl[]): Promise<string> {
    return this.send(() => this.server.create(this.creds!.id, path, data, mode, acl));
  }
  getACL(path: string): Promise<RawAcl[]> {
    return this.send(() => this.server.getACL(this.creds!.id, path));
  }
  getData(path: string, watch?: (e: RawEvent) => void): Promise<{ data: string; stat: RawStat }> {
    return this.send(() => this.server.getData(this.creds!.id, path, !!watch), () => this.register('data', path, watch));
  }
  setData(path: string, data: string, version: number): Promise<RawStat> {
    return this.send(() => this.server.setData(this.creds!.id, path, data, version));
  }
  getChildren(path: string, watch?: (e: RawEvent) => void): Promise<string[]> {
    return this.send(() => this.server.getChildren(this.creds!.id, path, !!watch), () => this.register('child', path, watch));
  }
  exists(path: string, watch?: (e: RawEvent) => void): Promise<RawStat | null> {
    return this.send(() => this.server.exists(this.creds!.id, path, !!watch), (r) => this.register(r ? 'data' : 'exist', path, watch));
  }
  remove(path: string, version: number): Promise<void> {
    return this.send(() => this.server.remove(this.creds!.id, path, version));
  }
}
