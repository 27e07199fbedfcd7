/**
 * The in-memory twin of a ZooKeeper server, with the semantics the coordination client relies
 * on: a znode tree with data versions, sequence numbers taken from the parent's child-change
 * count (cversion, as ZooKeeper does: increasing, with gaps), ephemeral znodes owned by a
 * session and deleted when it closes or expires, one-shot watches kept per session across
 * reconnects, session timeouts clamped to [min, max], sessions moved to whichever connection
 * last attached with their id and password, and stop()/start() as a server restart that keeps
 * its data and re-arms every session's timeout (a standalone server with a data dir does).
 */
import { randomBytes } from 'node:crypto';
import { PERMS, RawError, digestId, type DigestAuth, type RawAcl, type RawEvent, type RawStat, type SessionCredentials } from './raw.ts';
import { baseName, formatSequence, parentOf } from './paths.ts';

/** The server's view of one client connection (memory.ts implements it). */
export interface MemoryConnection {
  /** Queues a watch notification to the client, in order with the answers to its requests. */
  event(event: RawEvent): void;
  /** The server closes this connection (session moved, expired or closed, or the server stopped). */
  drop(reason: 'moved' | 'expired' | 'closed' | 'down'): void;
}

export interface MemoryZooKeeperOptions {
  /** @default 500 */
  minSessionTimeoutMs?: number;
  /** @default 60000 */
  maxSessionTimeoutMs?: number;
  /** How often expired sessions are looked for (ZooKeeper: once a tick). @default 50 */
  tickMs?: number;
}

interface Znode {
  /** Who may do what, as ZooKeeper checks it (exists is never checked). */
  readonly acl: readonly RawAcl[];
  data: string;
  version: number;
  cversion: number;
  owner: string;
  children: Set<string>;
}

interface Session {
  readonly id: string;
  readonly password: string;
  readonly timeoutMs: number;
  lastSeen: number;
  conn: MemoryConnection | undefined;
  /** Notifications that arrived while no connection was attached. */
  queued: RawEvent[];
  /** 'scheme:id' of the credentials its current connection presented (ZooKeeper keeps them per connection). */
  auth: Set<string>;
}

const OPEN: readonly RawAcl[] = [{ scheme: 'world', id: 'anyone', perms: PERMS.all }];

export type AttachResult = { ok: true; id: string; password: string; timeoutMs: number } | { ok: false; reason: 'down' | 'expired' };

export class MemoryZooKeeper {
  private readonly nodes = new Map<string, Znode>([['/', { acl: OPEN, data: '', version: 0, cversion: 0, owner: '', children: new Set() }]]);
  private readonly sessions = new Map<string, Session>();
  private readonly dataWatches = new Map<string, Set<string>>();
  private readonly childWatches = new Map<string, Set<string>>();
  private up = true;
  private readonly sweeper: NodeJS.Timeout;
  private readonly min: number;
  private readonly max: number;

  constructor(options: MemoryZooKeeperOptions = {}) {
    this.min = options.minSessionTimeoutMs ?? 500;
    this.max = options.maxSessionTimeoutMs ?? 60000;
    this.sweeper = setInterval(() => this.sweep(), options.tickMs ?? 50);
    this.sweeper.unref();
  }

  get running(): boolean {
    return this.up;
  }
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Like killing the server process: every connection drops; data and sessions are kept. */
  stop(): void {
    this.up = false;
    for (const s of this.sessions.values()) this.detach(s, 'down');
  }
  /** Like starting it again: every session gets a whole timeout to reconnect. */
  start(): void {
    this.up = true;
    const now = Date.now();
    for (const s of this.sessions.values()) s.lastSeen = now;
  }
  dispose(): void {
    clearInterval(this.sweeper);
  }

  attach(conn: MemoryConnection, requestedTimeoutMs: number, resume?: SessionCredentials, auth?: DigestAuth): AttachResult {
    if (!this.up) return { ok: false, reason: 'down' };
    let s: Session | undefined;
    if (resume && /[^0]/.test(resume.id)) {
      s = this.sessions.get(resume.id);
      if (!s || s.password !== resume.password) return { ok: false, reason: 'expired' };
      if (s.conn && s.conn !== conn) this.detach(s, 'moved');
    } else {
      const timeoutMs = Math.min(this.max, Math.max(this.min, requestedTimeoutMs));
      s = { id: randomBytes(8).toString('hex'), password: randomBytes(16).toString('hex'), timeoutMs, lastSeen: 0, conn: undefined, queued: [], auth: new Set() };
      this.sessions.set(s.id, s);
    }
    s.conn = conn;
    s.auth = new Set(auth ? [`digest:${digestId(auth)}`] : []);
    s.lastSeen = Date.now();
    for (const e of s.queued.splice(0)) this.notify(s, e);
    return { ok: true, id: s.id, password: s.password, timeoutMs: s.timeoutMs };
  }

  /** A connection's client went away (not a session close): the session lives on until its timeout. */
  disconnect(id: string, conn: MemoryConnection): void {
    const s = this.sessions.get(id);
    if (s?.conn === conn) s.conn = undefined;
  }

  /** Runs one request from `conn` on behalf of session `id`; throws RawError as ZooKeeper answers. */
  request<T>(id: string, conn: MemoryConnection, op: (sessionId: string) => T): T {
    const s = this.sessions.get(id);
    if (!this.up || !s || s.conn !== conn) throw new RawError('CONNECTION_LOSS', 'connection lost');
    s.lastSeen = Date.now();
    return op(id);
  }

  closeSession(id: string, conn: MemoryConnection): void {
    const s = this.sessions.get(id);
    if (this.up && s?.conn === conn) this.end(s, 'closed');
  }

  /** Expires a session now, as the server does when it has not heard from it for its timeout. */
  expire(id: string): void {
    const s = this.sessions.get(id);
    if (s) this.end(s, 'expired');
  }

  // Znode operations, called through request().

  create(session: string, path: string, data: string, mode: 'persistent' | 'ephemeral' | 'ephemeral-sequential', acl: readonly RawAcl[] = OPEN): string {
    const parentPath = parentOf(path);
    const parent = this.nodes.get(parentPath);
    if (!parent) throw new RawError('NO_NODE', `no node ${parentPath}`);
    this.check(session, parent, PERMS.create, parentPath);
    if (parent.owner) throw new RawError('OTHER', `ephemeral ${parentPath} cannot have children`);
    const full = mode === 'ephemeral-sequential' ? path + formatSequence(parent.cversion) : path;
    if (this.nodes.has(full)) throw new RawError('NODE_EXISTS', `node ${full} exists`);
    this.nodes.set(full, { acl: [...acl], data, version: 0, cversion: 0, owner: mode === 'persistent' ? '' : session, children: new Set() });
    parent.children.add(baseName(full));
    parent.cversion++;
    this.trigger(this.dataWatches, full, 'created');
    this.trigger(this.childWatches, parentPath, 'children');
    return full;
  }

  getData(session: string, path: string, watch: boolean): { data: string; stat: RawStat } {
    const n = this.node(path);
    this.check(session, n, PERMS.read, path);
    if (watch) this.watch(this.dataWatches, path, session);
    return { data: n.data, stat: stat(n) };
  }

  setData(session: string, path: string, data: string, version: number): RawStat {
    const n = this.node(path);
    this.check(session, n, PERMS.write, path);
    if (version !== -1 && version !== n.version) throw new RawError('BAD_VERSION', `${path} is at version ${n.version}, not ${version}`);
    n.data = data;
    n.version++;
    this.trigger(this.dataWatches, path, 'data');
    return stat(n);
  }

  getChildren(session: string, path: string, watch: boolean): string[] {
    const n = this.node(path);
    this.check(session, n, PERMS.read, path);
    if (watch) this.watch(this.childWatches, path, session);
    return [...n.children];
  }

  exists(session: string, path: string, watch: boolean): RawStat | null {
    if (watch) this.watch(this.dataWatches, path, session);
    const n = this.nodes.get(path);
    return n ? stat(n) : null;
  }

  getACL(session: string, path: string): RawAcl[] {
    const n = this.node(path);
    this.check(session, n, PERMS.read | PERMS.admin, path);
    return n.acl.map((a) => ({ ...a }));
  }

  remove(session: string, path: string, version: number): void {
    const n = this.node(path);
    this.check(session, this.nodes.get(parentOf(path))!, PERMS.delete, parentOf(path));
    if (version !== -1 && version !== n.version) throw new RawError('BAD_VERSION', `${path} is at version ${n.version}, not ${version}`);
    if (n.children.size > 0) throw new RawError('NOT_EMPTY', `${path} has children`);
    this.delete(path);
  }

  /** NO_AUTH unless an entry of the znode's ACL grants one of `perms` to the session. */
  private check(session: string, n: Znode, perms: number, path: string): void {
    const auth = this.sessions.get(session)?.auth;
    const granted = n.acl.some((a) => (a.perms & perms) !== 0 && ((a.scheme === 'world' && a.id === 'anyone') || auth?.has(`${a.scheme}:${a.id}`)));
    if (!granted) throw new RawError('NO_AUTH', `not authorized for ${path}`);
  }

  private node(path: string): Znode {
    const n = this.nodes.get(path);
    if (!n) throw new RawError('NO_NODE', `no node ${path}`);
    return n;
  }

  private delete(path: string): void {
    const parentPath = parentOf(path);
    const parent = this.nodes.get(parentPath)!;
    this.nodes.delete(path);
    parent.children.delete(baseName(path));
    parent.cversion++;
    // One notification per session, whichever kinds of watch it had on the path.
    const watchers = new Set([...(this.take(this.dataWatches, path) ?? []), ...(this.take(this.childWatches, path) ?? [])]);
    for (const id of watchers) this.deliver(id, { type: 'deleted', path });
    this.trigger(this.childWatches, parentPath, 'children');
  }

  private end(s: Session, why: 'expired' | 'closed'): void {
    this.sessions.delete(s.id);
    for (const watches of [this.dataWatches, this.childWatches]) for (const ids of watches.values()) ids.delete(s.id);
    const owned = [...this.nodes.entries()].filter(([, n]) => n.owner === s.id).map(([p]) => p);
    for (const path of owned) this.delete(path);
    this.detach(s, why);
  }

  private detach(s: Session, why: 'moved' | 'expired' | 'closed' | 'down'): void {
    const conn = s.conn;
    s.conn = undefined;
    conn?.drop(why);
  }

  private sweep(): void {
    if (!this.up) return;
    const now = Date.now();
    for (const s of [...this.sessions.values()]) if (now - s.lastSeen > s.timeoutMs) this.end(s, 'expired');
  }

  private watch(watches: Map<string, Set<string>>, path: string, session: string): void {
    let ids = watches.get(path);
    if (!ids) watches.set(path, (ids = new Set()));
    ids.add(session);
  }

  private take(watches: Map<string, Set<string>>, path: string): Set<string> | undefined {
    const ids = watches.get(path);
    watches.delete(path);
    return ids;
  }

  private trigger(watches: Map<string, Set<string>>, path: string, type: RawEvent['type']): void {
    for (const id of this.take(watches, path) ?? []) this.deliver(id, { type, path });
  }

  private deliver(id: string, event: RawEvent): void {
    const s = this.sessions.get(id);
    if (s) this.notify(s, event);
  }

  private notify(s: Session, event: RawEvent): void {
    if (s.conn) s.conn.event(event);
    else s.queued.push(event);
  }
}

function stat(n: Znode): RawStat {
  return { version: n.version, ephemeralOwner: n.owner };
}
