/**
 * The Coordination interface (types.ts) over a backend (raw.ts): membership, versioned data and
 * the epoch counter as ZooKeeper recipes, with the session handled by session.ts. The same
 * class serves ZooKeeper and the in-memory twin; only the connector differs.
 */
import { randomBytes } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';
import { ancestry, baseName, checkData, checkPath, joinPath, sequenceOf } from './paths.ts';
import { PERMS, RawError, digestId, type Connector, type RawAcl, type RawEvent } from './raw.ts';
import { SessionKeeper, type OpContext } from './session.ts';
import type { Coordination, CoordinationAuth, CoordinationOptions, Member, SessionEvent, SessionInfo, Versioned, Watcher } from './types.ts';

export class CoordinationClient implements Coordination {
  readonly kind: string;
  private readonly keeper: SessionKeeper;
  private readonly auth: CoordinationAuth | undefined;
  /** The ACL of every znode created at or under `auth.root`: all to our credentials, nothing to anyone else. */
  private readonly privateAcl: readonly RawAcl[] | undefined;

  constructor(connector: Connector, options: CoordinationOptions = {}) {
    const sessionTimeoutMs = options.sessionTimeoutMs ?? 4000;
    this.kind = connector.kind;
    const auth = (this.auth = options.auth);
    if (auth) {
      checkPath('auth', auth.root);
      if (!auth.user || auth.user.includes(':') || !auth.password || auth.password.includes(':')) throw new TabswarmError('COORD_BAD_ARGUMENT', { op: 'auth', detail: 'user and password must be non-empty and contain no \':\'' });
      this.privateAcl = [{ scheme: 'digest', id: digestId(auth), perms: PERMS.all }];
      // Every session (the first, and each after an expiry) presents the credentials.
      const plain = connector;
      connector = { kind: plain.kind, servers: plain.servers, open: (o) => plain.open({ ...o, auth }) };
    }
    this.keeper = new SessionKeeper(connector, {
      sessionTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? 15000,
      opTimeoutMs: options.opTimeoutMs ?? sessionTimeoutMs,
    });
  }

  connect(): Promise<void> {
    return this.keeper.connect();
  }
  close(): Promise<void> {
    return this.keeper.close();
  }
  session(): SessionInfo {
    return this.keeper.info();
  }
  onSession(listener: (event: SessionEvent) => void): () => void {
    return this.keeper.onEvent(listener);
  }

  async register(path: string, data: string, prefix = 'member'): Promise<string> {
    const ctx = { op: 'register', path };
    checkPath(ctx.op, path);
    checkData(ctx.op, data);
    if (!/^[\w.-]+$/.test(prefix)) throw new TabswarmError('COORD_BAD_ARGUMENT', { op: ctx.op, detail: `prefix '${prefix}' must be letters, digits, '_', '.' or '-'` });
    await this.ensure(path);
    // A token in the name finds our znode again if the connection drops mid-create: the
    // create may have happened, and a blind retry would register this node twice.
    const token = randomBytes(8).toString('hex');
    const name = `${prefix}-${token}-`;
    try {
      return await this.keeper.run(ctx, false, async (raw) => {
        for (;;) {
          try {
            return baseName(await raw.create(joinPath(path, name), data, 'ephemeral-sequential', this.aclFor(path)));
          } catch (err) {
            if (!(err instanceof RawError) || err.code !== 'CONNECTION_LOSS') throw err;
            await this.waitConnected(ctx);
            const mine = (await raw.getChildren(path)).find((child) => child.startsWith(name));
            if (mine) return mine;
          }
        }
      });
    } catch (err) {
      throw this.answer(err, ctx);
    }
  }

  async members(path: string, watcher?: Watcher): Promise<Member[]> {
    const ctx = { op: 'members', path };
    checkPath(ctx.op, path);
    const watch = this.keeper.watch(path, watcher);
    let names: string[];
    try {
      names = await this.keeper.run(ctx, true, (raw) => raw.getChildren(path, watch.fn as (e: RawEvent) => void));
    } catch (err) {
      watch.cancel();
      throw this.answer(err, ctx);
    }
    const members = await Promise.all(
      names.map(async (name): Promise<Member | undefined> => {
        const sequence = sequenceOf(name);
        if (sequence === undefined) return undefined;
        try {
          const { data, stat } = await this.keeper.run(ctx, true, (raw) => raw.getData(joinPath(path, name)));
          return { name, sequence, data, owner: stat.ephemeralOwner };
        } catch (err) {
          // Left between the listing and the read: it is gone, and the watch has fired.
          if (err instanceof RawError && err.code === 'NO_NODE') return undefined;
          throw this.answer(err, ctx);
        }
      }),
    );
    return members.filter((m): m is Member => m !== undefined).sort((a, b) => a.sequence - b.sequence);
  }

  async get(path: string, watcher?: Watcher): Promise<Versioned> {
    const ctx = { op: 'get', path };
    checkPath(ctx.op, path);
    const watch = this.keeper.watch(path, watcher);
    try {
      const { data, stat } = await this.keeper.run(ctx, true, (raw) => raw.getData(path, watch.fn as (e: RawEvent) => void));
      return { data, version: stat.version };
    } catch (err) {
      watch.cancel();
      throw this.answer(err, ctx);
    }
  }

  async exists(path: string, watcher?: Watcher): Promise<{ version: number } | null> {
    const ctx = { op: 'exists', path };
    checkPath(ctx.op, path);
    const watch = this.keeper.watch(path, watcher);
    try {
      const stat = await this.keeper.run(ctx, true, (raw) => raw.exists(path, watch.fn as (e: RawEvent) => void));
      return stat ? { version: stat.version } : null;
    } catch (err) {
      watch.cancel();
      throw this.answer(err, ctx);
    }
  }

  async set(path: string, data: string, expectedVersion: number): Promise<number> {
    const ctx = { op: 'set', path };
    checkPath(ctx.op, path);
    checkData(ctx.op, data);
    checkVersion(ctx.op, expectedVersion);
    try {
      // Not repeated after a connection loss: the first attempt may have been applied.
      return (await this.keeper.run(ctx, false, (raw) => raw.setData(path, data, expectedVersion))).version;
    } catch (err) {
      throw this.answer(err, ctx, expectedVersion);
    }
  }

  async ensure(path: string, data = ''): Promise<void> {
    const ctx = { op: 'ensure', path };
    checkPath(ctx.op, path);
    checkData(ctx.op, data);
    for (const p of ancestry(path)) {
      if (await this.exists(p)) continue;
      try {
        await this.keeper.run(ctx, true, (raw) => raw.create(p, p === path ? data : '', 'persistent', this.aclFor(p)));
      } catch (err) {
        // Someone else made it meanwhile, or our own earlier attempt did before a connection loss.
        if (!(err instanceof RawError && err.code === 'NODE_EXISTS')) throw this.answer(err, ctx);
      }
    }
  }

  async increment(path: string): Promise<number> {
    await this.ensure(path, '0');
    for (;;) {
      const { data, version } = await this.get(path);
      const value = Number(data || '0');
      if (!Number.isSafeInteger(value)) throw new TabswarmError('COORD_FAILED', { op: 'increment', path, detail: `'${data.slice(0, 40)}' is not an integer` });
      try {
        await this.set(path, String(value + 1), version);
        return value + 1;
      } catch (err) {
        // Lost the race: read again. After a connection loss the set may have been applied:
        // trying again then skips a value, which an epoch tolerates (it only has to grow).
        if (err instanceof TabswarmError && (err.code === 'COORD_VERSION_CONFLICT' || err.code === 'COORD_UNAVAILABLE')) continue;
        throw err;
      }
    }
  }

  async remove(path: string, expectedVersion = -1): Promise<boolean> {
    const ctx = { op: 'remove', path };
    checkPath(ctx.op, path);
    checkVersion(ctx.op, expectedVersion);
    try {
      await this.keeper.run(ctx, false, (raw) => raw.remove(path, expectedVersion));
      return true;
    } catch (err) {
      if (err instanceof RawError && err.code === 'NO_NODE') return false;
      throw this.answer(err, ctx, expectedVersion);
    }
  }

  async isPrivate(path: string): Promise<boolean> {
    const ctx = { op: 'isPrivate', path };
    checkPath(ctx.op, path);
    let acl: RawAcl[];
    try {
      acl = await this.keeper.run(ctx, true, (raw) => raw.getACL(path));
    } catch (err) {
      throw this.answer(err, ctx);
    }
    const mine = this.privateAcl?.[0];
    return mine !== undefined && acl.length > 0 && acl.every((a) => a.scheme === mine.scheme && a.id === mine.id);
  }

  /** The ACL for a znode created at `path`: private at or under `auth.root`, else open (undefined). */
  private aclFor(path: string): readonly RawAcl[] | undefined {
    const root = this.auth?.root;
    return root !== undefined && (path === root || path.startsWith(`${root}/`) || root === '/') ? this.privateAcl : undefined;
  }

  /**
   * The expiry fault, for tests (see faults.ts): ends this client's live session on the server
   * from a second connection, as ZooKeeper does after a partition, and resolves once this
   * client has seen the expiry. Its ephemeral znodes are gone by then.
   */
  async forceExpire(timeoutMs = 15000): Promise<void> {
    const creds = this.keeper.credentials();
    if (!creds) throw new TabswarmError('COORD_FAILED', { op: 'forceExpire', path: '', detail: 'no live session' });
    const generation = this.keeper.info().generation;
    const deadline = Date.now() + timeoutMs;
    let expired = false;
    const off = this.onSession((e) => e.state === 'expired' && e.generation === generation && (expired = true));
    try {
      while (Date.now() < deadline) {
        await this.keeper.endOnServer(creds, this.session().timeoutMs);
        // Reconnecting the moment the second connection takes its session over, this client
        // may take it back before the close arrives; then it is connected again, and we retry.
        const verdict = Date.now() + this.session().timeoutMs;
        while (!expired && Date.now() < verdict) {
          await new Promise((r) => setTimeout(r, 25));
          if (this.keeper.info().generation === generation && this.session().state === 'connected') break;
        }
        if (expired) return;
      }
    } finally {
      off();
    }
    throw new TabswarmError('COORD_FAILED', { op: 'forceExpire', path: '', detail: `session ${creds.id} did not expire within ${timeoutMs} ms` });
  }

  private waitConnected(ctx: OpContext): Promise<void> {
    return this.keeper.run(ctx, true, (raw) => raw.exists('/')).then(() => undefined);
  }

  /** Maps a backend's answer to a catalogued error; catalogued errors pass through. */
  private answer(err: unknown, ctx: OpContext, expected?: number): Error {
    if (!(err instanceof RawError)) return err as Error;
    if (err.code === 'NO_NODE') return new TabswarmError('COORD_NO_NODE', { ...ctx });
    if (err.code === 'BAD_VERSION') return new TabswarmError('COORD_VERSION_CONFLICT', { path: ctx.path, expected });
    if (err.code === 'NO_AUTH') return new TabswarmError('COORD_NO_AUTH', { ...ctx });
    return new TabswarmError('COORD_FAILED', { ...ctx, detail: `${err.code}: ${err.message}` });
  }
}

function checkVersion(op: string, version: number): void {
  if (!Number.isInteger(version) || version < -1) throw new TabswarmError('COORD_BAD_ARGUMENT', { op, detail: `expected version must be an integer >= -1, got ${version}` });
}
