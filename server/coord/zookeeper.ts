/**
 * The ZooKeeper backend: one node-zookeeper-client object per session. The only file that
 * imports the library. Its behaviours that shape this adapter:
 *
 * - After its session expires a client object is unusable (every call fails with
 *   SESSION_EXPIRED); the coordination client opens a new one (session.ts).
 * - It learns of an expiry only when a server tells it on reconnect: while no server answers
 *   it reports nothing. The coordination client keeps its own clock for that (session.ts).
 * - It has no read timeout (the library's is commented out): a server that stops answering
 *   without closing the socket (a stopped process, a silent network) goes unnoticed, so
 *   dropConnection() exists to make it reconnect elsewhere. Nor does a reconnect have one once
 *   TCP is up: a handshake the server never answers waits forever (session.ts redials).
 * - Requests made while disconnected are queued without a deadline; deadlines live above.
 * - close() emits no event of its own; the CLOSED state is read from its connection manager,
 *   and a close that does not finish in time destroys the socket.
 * - `retries` is left at 0: a CONNECTION_LOSS is reported, not retried blindly, because a
 *   create or set may have been applied.
 * - Its request ids start at 0, and a client closed before its handshake completes parses the
 *   server's connect answer as the reply to request 0 (both start with a 0), then throws
 *   "Unknown code" from the socket handler, crashing the process. Ids start at 1 here, as
 *   the Java client's do, so that answer matches no request and the close completes.
 * - Its error table stops at 3.4's codes: a reply carrying a newer one (3.8 answers a request
 *   on a session it no longer knows with UNKNOWN_SESSION, -12) made it throw "Unknown code"
 *   from the socket handler, crashing the process (seen once in coord.test.ts, CI). Such a code
 *   now reaches the caller as an ordinary error (`OTHER`), through `tolerateUnknownCodes`.
 */
import zookeeper from 'node-zookeeper-client';
import type { Client, Event as ZkEvent, Stat } from 'node-zookeeper-client';
import { RawError, type Connector, type DigestAuth, type RawAcl, type RawErrorCode, type RawEvent, type RawSession, type RawStat, type RawState, type SessionCredentials } from './raw.ts';

export interface ZooKeeperConnectorOptions {
  /**
   * Longest pause, in ms, between two rounds of reconnect attempts over all servers (the
   * library waits a random fraction of it). @default 200
   */
  spinDelayMs?: number;
}

/** `connectionString`: 'host:port,host:port,...', optionally with a chroot ('.../tabswarm'). */
export function zookeeperConnector(connectionString: string, options: ZooKeeperConnectorOptions = {}): Connector {
  return {
    kind: 'zookeeper',
    servers: connectionString,
    open: ({ sessionTimeoutMs, resume, auth }) => new ZooKeeperSession(connectionString, sessionTimeoutMs, options.spinDelayMs ?? 200, resume, auth),
  };
}

/** The library's connection manager, for what its public API does not expose. */
interface ConnectionManager {
  state: number;
  xid: number;
  socket?: { destroy(): void };
  connectTimeoutHandler?: NodeJS.Timeout | null;
  on(event: 'state', listener: (state: number) => void): void;
}
const CM_CLOSED = -2;

/**
 * The library builds every server error with `Exception.create(code)`, which throws on a code
 * missing from its table (its connection manager calls it through the module's exports, so
 * replacing the export reaches it). An unknown code becomes an Exception like any other, named
 * by its number, so the request it answers fails instead of the process.
 */
export function tolerateUnknownCodes(exception: typeof zookeeper.Exception): void {
  const ex = exception as unknown as { create: (code: number, path?: string) => Error; prototype: object; __tolerant?: true };
  if (ex.__tolerant) return;
  const create = ex.create;
  ex.create = function tolerantCreate(code: number, path?: string): Error {
    try {
      return create(code, path);
    } catch {
      const e = Object.create(ex.prototype) as Error & { code: number; path?: string };
      Error.captureStackTrace(e, tolerantCreate);
      e.code = code;
      e.name = `ZOOKEEPER_ERROR_${code}`;
      e.path = path;
      e.message = `Exception: ${e.name}[${code}]${path ? `@${path}` : ''}`;
      return e;
    }
  };
  ex.__tolerant = true;
}
tolerateUnknownCodes(zookeeper.Exception);

const CODES: Record<number, RawErrorCode> = {
  [zookeeper.Exception.NO_NODE]: 'NO_NODE',
  [zookeeper.Exception.NODE_EXISTS]: 'NODE_EXISTS',
  [zookeeper.Exception.BAD_VERSION]: 'BAD_VERSION',
  [zookeeper.Exception.NOT_EMPTY]: 'NOT_EMPTY',
  [zookeeper.Exception.NO_AUTH]: 'NO_AUTH',
  [zookeeper.Exception.CONNECTION_LOSS]: 'CONNECTION_LOSS',
  [zookeeper.Exception.OPERATION_TIMEOUT]: 'CONNECTION_LOSS',
  [zookeeper.Exception.SESSION_EXPIRED]: 'SESSION_EXPIRED',
};

const EVENTS: Record<number, RawEvent['type']> = {
  [zookeeper.Event.NODE_CREATED]: 'created',
  [zookeeper.Event.NODE_DELETED]: 'deleted',
  [zookeeper.Event.NODE_DATA_CHANGED]: 'data',
  [zookeeper.Event.NODE_CHILDREN_CHANGED]: 'children',
};

const MODES = {
  persistent: zookeeper.CreateMode.PERSISTENT,
  ephemeral: zookeeper.CreateMode.EPHEMERAL,
  'ephemeral-sequential': zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
} as const;

function toRawError(err: unknown): RawError {
  const e = err as { getCode?: () => number; message?: string } | null;
  const code = typeof e?.getCode === 'function' ? CODES[e.getCode()] ?? 'OTHER' : 'OTHER';
  return new RawError(code, String(e?.message ?? err));
}

function toStat(stat: Stat): RawStat {
  const owner = stat.ephemeralOwner.toString('hex');
  return { version: stat.version, ephemeralOwner: /^0+$/.test(owner) ? '' : owner };
}

class ZooKeeperSession implements RawSession {
  private readonly client: Client;
  private readonly manager: ConnectionManager;
  private current: RawState = 'connecting';
  private readonly listeners: ((s: RawState) => void)[] = [];
  private readonly closedPromise: Promise<void>;
  /** Operations waiting for the connection (see `call`); settled by the next state change. */
  private waiting: { resolve(): void; reject(err: RawError): void }[] = [];

  constructor(connectionString: string, private readonly requestedTimeoutMs: number, spinDelayMs: number, resume?: SessionCredentials, auth?: DigestAuth) {
    this.client = zookeeper.createClient(connectionString, {
      sessionTimeout: requestedTimeoutMs,
      spinDelay: spinDelayMs,
      retries: 0,
      // Accepted by the library (ConnectionManager reads them) but missing from its types.
      ...(resume ? { sessionId: Buffer.from(resume.id, 'hex'), sessionPassword: Buffer.from(resume.password, 'hex') } : {}),
    } as Parameters<typeof zookeeper.createClient>[1]);
    this.manager = (this.client as unknown as { connectionManager: ConnectionManager }).connectionManager;
    this.manager.xid = 1;
    this.closedPromise = new Promise((resolve) => this.manager.on('state', (s) => s === CM_CLOSED && resolve()));
    this.closedPromise.then(() => this.set('closed'));
    this.client.on('state', (s) => {
      if (s === zookeeper.State.SYNC_CONNECTED) this.set('connected');
      else if (s === zookeeper.State.DISCONNECTED) this.set('disconnected');
      else if (s === zookeeper.State.EXPIRED) this.set('expired');
      else if (s === zookeeper.State.AUTH_FAILED) this.set('closed');
    });
    // Before connect: the library keeps the credentials and sends them first on every
    // connection (the server forgets them when a connection drops).
    if (auth) this.client.addAuthInfo('digest', Buffer.from(`${auth.user}:${auth.password}`, 'utf8'));
    this.client.connect();
  }

  private set(state: RawState): void {
    // 'expired' and 'closed' are final; the library still reports DISCONNECTED after EXPIRED.
    if (this.current === state || this.current === 'expired' || this.current === 'closed') return;
    this.current = state;
    if (state !== 'disconnected') {
      const waiting = this.waiting;
      this.waiting = [];
      for (const w of waiting) state === 'connected' ? w.resolve() : w.reject(this.gone());
    }
    for (const l of this.listeners) l(state);
  }

  private gone(): RawError {
    return this.current === 'expired' ? new RawError('SESSION_EXPIRED', 'the session expired') : new RawError('CONNECTION_LOSS', 'the session is closed');
  }

  /**
   * Resolves once the session is connected. The library sends its auth packet when a socket
   * connects, queued behind every request already waiting: a request made while connecting (a
   * new session, or a reconnect) reached the server before the credentials and failed NO_AUTH
   * on every znode under the cluster's ACL (seen: "chain reconcile failed" right after each
   * session expiry). Requests wait for the connection instead; the caller's deadline bounds it.
   */
  private connected(): Promise<void> {
    if (this.current === 'connected') return Promise.resolve();
    if (this.current === 'expired' || this.current === 'closed') return Promise.reject(this.gone());
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  state(): RawState {
    return this.current;
  }
  onState(listener: (state: RawState) => void): void {
    this.listeners.push(listener);
  }
  credentials(): SessionCredentials {
    return { id: this.client.getSessionId().toString('hex'), password: this.client.getSessionPassword().toString('hex') };
  }
  timeoutMs(): number {
    return this.current === 'connecting' ? this.requestedTimeoutMs : this.client.getSessionTimeout();
  }
  dropConnection(): void {
    // The library arms a connect timer per attempt but clears only the newest one it knows of:
    // an attempt dropped mid-connect would leave its timer to destroy the next, good, socket.
    if (this.manager.connectTimeoutHandler) clearTimeout(this.manager.connectTimeoutHandler);
    this.manager.socket?.destroy();
  }

  async close(): Promise<void> {
    if (this.manager.state !== CM_CLOSED) {
      this.client.close();
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([this.closedPromise.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 2000)))]);
      clearTimeout(timer);
      // No server took the close request (none is up, or one hangs): drop the socket, which
      // ends the library's reconnect loop since it is closing.
      if (late) this.manager.socket?.destroy();
    }
    this.set('closed');
  }

  private async call<T>(start: (done: (err: unknown, value?: T) => void) => void): Promise<T> {
    await this.connected();
    return new Promise((resolve, reject) => {
      try {
        start((err, value) => (err ? reject(toRawError(err)) : resolve(value as T)));
      } catch (err) {
        // The library asserts on its arguments synchronously.
        reject(new RawError('OTHER', (err as Error).message));
      }
    });
  }

  private watcher(watch?: (e: RawEvent) => void): ((e: ZkEvent) => void) | undefined {
    if (!watch) return undefined;
    return (e) => {
      const type = EVENTS[e.getType()];
      if (type) watch({ type, path: e.getPath() });
    };
  }

  create(path: string, data: string, mode: 'persistent' | 'ephemeral' | 'ephemeral-sequential', acl?: readonly RawAcl[]): Promise<string> {
    const entries = acl ?? [{ scheme: 'world', id: 'anyone', perms: zookeeper.Permission.ALL }];
    const acls = entries.map((a) => new zookeeper.ACL(a.perms, new zookeeper.Id(a.scheme, a.id)));
    return this.call((done) => this.client.create(path, Buffer.from(data, 'utf8'), acls, MODES[mode], done));
  }

  async getACL(path: string): Promise<RawAcl[]> {
    const acls = await this.call<zookeeper.ACL[]>((done) => this.client.getACL(path, (err, list) => done(err, list)));
    // The library's field is `permission`; its types call it `perms`.
    return (acls ?? []).map((a) => ({ scheme: a.id.scheme, id: a.id.id, perms: (a as unknown as { permission: number }).permission }));
  }

  async getData(path: string, watch?: (e: RawEvent) => void): Promise<{ data: string; stat: RawStat }> {
    const w = this.watcher(watch);
    const [data, stat] = await this.call<[Buffer | null, Stat]>((done) => {
      const cb = (err: unknown, d: Buffer, s: Stat) => done(err, [d, s]);
      if (w) this.client.getData(path, w, cb);
      else this.client.getData(path, cb);
    });
    return { data: data ? data.toString('utf8') : '', stat: toStat(stat) };
  }

  async setData(path: string, data: string, version: number): Promise<RawStat> {
    return toStat(await this.call<Stat>((done) => this.client.setData(path, Buffer.from(data, 'utf8'), version, done)));
  }

  getChildren(path: string, watch?: (e: RawEvent) => void): Promise<string[]> {
    const w = this.watcher(watch);
    return this.call((done) => {
      if (w) this.client.getChildren(path, w, (err, children) => done(err, children));
      else this.client.getChildren(path, (err, children) => done(err, children));
    });
  }

  async exists(path: string, watch?: (e: RawEvent) => void): Promise<RawStat | null> {
    const w = this.watcher(watch);
    const stat = await this.call<Stat | null>((done) => {
      if (w) this.client.exists(path, w, done);
      else this.client.exists(path, done);
    });
    return stat ? toStat(stat) : null;
  }

  remove(path: string, version: number): Promise<void> {
    return this.call((done) => this.client.remove(path, version, (err) => done(err)));
  }
}
