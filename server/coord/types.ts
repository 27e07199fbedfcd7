/**
 * Coordination: what the PS cluster needs from ZooKeeper, behind an interface of our own so the
 * unmaintained client library stays replaceable (server/coord/zookeeper.ts is the only file that
 * imports it) and so tests can run the same cases against an in-memory twin.
 *
 * Three things: a session (whose loss a node must act on at once), membership (ephemeral
 * sequential znodes, in registration order) and versioned data (compare-and-set). Data is UTF-8
 * text, at most 1 MiB per znode; paths are absolute ZooKeeper paths ('/tabswarm/chain').
 *
 * Errors are catalogued (shared/errors.ts): COORD_VERSION_CONFLICT, COORD_NO_NODE,
 * COORD_SESSION_EXPIRED, COORD_UNAVAILABLE (outcome unknown), COORD_BAD_ARGUMENT,
 * COORD_CLOSED, COORD_NO_AUTH (the znode's ACL refuses this client's credentials), COORD_FAILED.
 */

/**
 * - connecting: no session yet (at start, and after an expiry until the new session is open);
 * - connected: the session is live and a server answers;
 * - disconnected: the session may still be live, but no server has answered for 2/3 of the
 *   session timeout or the connection dropped; the client is reconnecting, and if it succeeds
 *   within the session timeout the session, its ephemeral znodes and its watches carry on;
 * - expired: the session is gone (ZooKeeper said so, or nothing answered for a whole session
 *   timeout, after which ZooKeeper will have expired it); a new session follows by itself;
 * - closed: close() was called.
 */
export type SessionState = 'connecting' | 'connected' | 'disconnected' | 'expired' | 'closed';

export interface SessionInfo {
  /** ZooKeeper's session id in hex ('' before the first session opens). */
  readonly id: string;
  readonly state: SessionState;
  /** The timeout the server granted (it clamps the requested one), in ms. */
  readonly timeoutMs: number;
  /** 1 for the first session, +1 for each session opened after an expiry. */
  readonly generation: number;
}

export interface SessionEvent {
  readonly state: SessionState;
  /** The session this event is about: on 'expired' the one that ended, on 'connected' the live one. */
  readonly session: string;
  readonly generation: number;
  /** On the first 'connected' of a session opened after an expiry: the session that expired. */
  readonly previous?: string;
  /** Why, for 'disconnected' and 'expired'. */
  readonly reason?: string;
}

/**
 * Watches are one-shot, as in ZooKeeper: a watcher fires at most once, for the first change
 * after the read that set it; read again (passing the watcher again) to keep watching.
 * 'session-lost' fires every watcher still pending when its session expires, because the
 * server forgets those watches with the session: whoever was waiting should re-read.
 */
export interface WatchEvent {
  readonly type: 'created' | 'deleted' | 'data' | 'children' | 'session-lost';
  readonly path: string;
}
export type Watcher = (event: WatchEvent) => void;

export interface Versioned {
  readonly data: string;
  /** ZooKeeper's data version: 0 at creation, +1 on every set. */
  readonly version: number;
}

export interface Member {
  /** The znode's name under the membership path, e.g. 'member-3f2a...-0000000007'. */
  readonly name: string;
  /** ZooKeeper's sequence number: members are in registration order by it. */
  readonly sequence: number;
  readonly data: string;
  /** The session that owns the ephemeral znode, in hex: tells a stale registration of ours from a live one. */
  readonly owner: string;
}

export interface Coordination {
  /** 'zookeeper' or 'memory'. */
  readonly kind: string;
  /** Opens the first session; rejects with COORD_UNAVAILABLE if none opens within the connect timeout. */
  connect(): Promise<void>;
  /** Ends the session: its ephemeral znodes vanish at once. Later calls fail with COORD_CLOSED. */
  close(): Promise<void>;
  session(): SessionInfo;
  /**
   * Session state changes, delivered synchronously as they are learnt, so a node can fence itself
   * (stop accepting writes) before anything else happens. After 'expired' a new session opens
   * by itself: registering again and setting watches again is the caller's job, on 'connected'
   * with `previous` set. Returns a function that unsubscribes.
   */
  onSession(listener: (event: SessionEvent) => void): () => void;

  /**
   * Registers a member: an EPHEMERAL_SEQUENTIAL znode under `path` (created with its parents if
   * missing) holding `data`, owned by the current session. Returns the member's name.
   * Should the connection drop mid-create, the member is found again by a unique token in its
   * name rather than created twice.
   */
  register(path: string, data: string, prefix?: string): Promise<string>;
  /** Members under `path` in registration (sequence) order; `watcher` fires on the next join or leave. */
  members(path: string, watcher?: Watcher): Promise<Member[]>;

  /** Data and version; COORD_NO_NODE if absent. `watcher` fires on the next change or deletion. */
  get(path: string, watcher?: Watcher): Promise<Versioned>;
  /** The version, or null if absent; `watcher` fires on creation, change or deletion. */
  exists(path: string, watcher?: Watcher): Promise<{ version: number } | null>;
  /**
   * Compare-and-set: writes only if the znode is at `expectedVersion` (-1: any version) and
   * returns the new version; COORD_VERSION_CONFLICT otherwise.
   */
  set(path: string, data: string, expectedVersion: number): Promise<number>;
  /** Creates the persistent znode and its parents if missing (mkdir -p); `data` only for a new leaf. */
  ensure(path: string, data?: string): Promise<void>;
  /**
   * Adds 1 to the integer stored at `path` (created as 0 if missing) by compare-and-set,
   * retrying on conflict; returns the new value. Each returned value is unique and larger than
   * any returned before it; if a connection drops mid-write a value may be skipped (a gap).
   */
  increment(path: string): Promise<number>;
  /** Deletes the znode if at `expectedVersion` (-1: any); false if it was already absent. */
  remove(path: string, expectedVersion?: number): Promise<boolean>;
  /**
   * True when the znode's ACL grants access to this client's credentials (`auth`) and to
   * nobody else: a znode someone else created first, open or under other credentials, is not.
   * COORD_NO_AUTH when the ACL does not even let this client read it.
   */
  isPrivate(path: string): Promise<boolean>;
}

/** Digest credentials, and the subtree they guard (docs/zookeeper.md, "Access control"). */
export interface CoordinationAuth {
  readonly user: string;
  /** Must not contain ':' (ZooKeeper splits 'user:password' at the first one). */
  readonly password: string;
  /**
   * Znodes this client creates at or under this path get an ACL granting every permission to
   * these credentials and none to anyone else; its ancestors (shared by other deployments) are
   * created open.
   */
  readonly root: string;
}

export interface CoordinationOptions {
  /** Session timeout to request; the server clamps it to its [min, max]. @default 4000 */
  sessionTimeoutMs?: number;
  /** How long connect() waits for the first session. @default 15000 */
  connectTimeoutMs?: number;
  /**
   * How long one operation may wait for a server before COORD_UNAVAILABLE (outcome unknown).
   * @default the session timeout
   */
  opTimeoutMs?: number;
  /** Present these digest credentials and create znodes under `auth.root` readable by them only. @default none: every znode open */
  auth?: CoordinationAuth;
}
