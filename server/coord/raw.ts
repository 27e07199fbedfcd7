/**
 * The primitives a backend gives the coordination client: one ZooKeeper session's connection
 * with the raw znode operations, as promises with a small set of error codes. Two backends
 * implement it: zookeeper.ts (node-zookeeper-client) and memory.ts (the in-memory twin).
 * Everything above it (session state machine, recipes, catalogued errors) is shared, so
 * replacing the client library means rewriting zookeeper.ts only.
 */

import { createHash } from 'node:crypto';

export type RawErrorCode = 'NO_NODE' | 'NODE_EXISTS' | 'BAD_VERSION' | 'NOT_EMPTY' | 'NO_AUTH' | 'CONNECTION_LOSS' | 'SESSION_EXPIRED' | 'OTHER';

export class RawError extends Error {
  constructor(readonly code: RawErrorCode, message: string) {
    super(message);
    this.name = 'RawError';
  }
}

export interface RawStat {
  readonly version: number;
  /** Owning session of an ephemeral znode, in hex; '' for a persistent one. */
  readonly ephemeralOwner: string;
}

export interface RawEvent {
  readonly type: 'created' | 'deleted' | 'data' | 'children';
  readonly path: string;
}

/** ZooKeeper's permission bits. */
export const PERMS = { read: 1, write: 2, create: 4, delete: 8, admin: 16, all: 31 } as const;

/** One entry of a znode's access control list, as ZooKeeper stores it. */
export interface RawAcl {
  /** 'world' (id 'anyone'), 'digest' (id 'user:base64(sha1(user:password))'), ... */
  readonly scheme: string;
  readonly id: string;
  readonly perms: number;
}

/** Credentials of ZooKeeper's digest scheme, sent on every connection of a session. */
export interface DigestAuth {
  readonly user: string;
  readonly password: string;
}

/** The digest scheme's id for `auth`, computed as ZooKeeper's DigestAuthenticationProvider does. */
export function digestId(auth: DigestAuth): string {
  return `${auth.user}:${createHash('sha1').update(`${auth.user}:${auth.password}`).digest('base64')}`;
}

/** What identifies a session to the server: enough to reattach to it from another connection. */
export interface SessionCredentials {
  /** 8 bytes, hex. */
  readonly id: string;
  /** 16 bytes, hex. */
  readonly password: string;
}

/**
 * - 'connected': (re)attached to a server; requests flow.
 * - 'disconnected': the connection dropped; the backend reconnects by itself.
 * - 'expired': a server refused the session as expired; terminal.
 * - 'closed': ended by close() or by the server; terminal.
 */
export type RawState = 'connecting' | 'connected' | 'disconnected' | 'expired' | 'closed';

export interface RawSession {
  state(): RawState;
  onState(listener: (state: RawState) => void): void;
  /** Valid once connected. */
  credentials(): SessionCredentials;
  /** The negotiated timeout once connected, else the requested one. */
  timeoutMs(): number;
  /** Drops the current connection (not the session): the backend reconnects, possibly to another server. */
  dropConnection(): void;
  /** Ends the session (its ephemeral znodes vanish); resolves once the connection is closed. */
  close(): Promise<void>;

  // Requests made while disconnected wait for the reconnect; a connection that drops with a
  // request outstanding fails it with CONNECTION_LOSS (it may or may not have been applied).
  /** `acl` omitted: open to anyone (ZooKeeper's OPEN_ACL_UNSAFE). */
  create(path: string, data: string, mode: 'persistent' | 'ephemeral' | 'ephemeral-sequential', acl?: readonly RawAcl[]): Promise<string>;
  /** Needs READ or ADMIN permission on the znode (ZooKeeper 3.5+), else NO_AUTH. */
  getACL(path: string): Promise<RawAcl[]>;
  getData(path: string, watch?: (e: RawEvent) => void): Promise<{ data: string; stat: RawStat }>;
  setData(path: string, data: string, version: number): Promise<RawStat>;
  getChildren(path: string, watch?: (e: RawEvent) => void): Promise<string[]>;
  exists(path: string, watch?: (e: RawEvent) => void): Promise<RawStat | null>;
  remove(path: string, version: number): Promise<void>;
}

export interface Connector {
  /** 'zookeeper' | 'memory'. */
  readonly kind: string;
  /** For messages: the servers it connects to. */
  readonly servers: string;
  /**
   * Starts connecting a new session, or reattaching to an existing one with `resume`. With
   * `auth`, the digest credentials are sent on every connection before any request.
   */
  open(options: { sessionTimeoutMs: number; resume?: SessionCredentials; auth?: DigestAuth }): RawSession;
}
