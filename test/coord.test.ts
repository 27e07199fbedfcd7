/**
 * One suite, run against every coordination backend: the in-memory twin and a real ZooKeeper
 * (Debian's package, started by server/zk). What the PS cluster will rely on: membership in
 * registration order, ephemeral members vanishing when their session closes or expires,
 * compare-and-set, the epoch counter under contention, expiry surfaced at once and recovered
 * with a new session, and sessions surviving a quick restart of the server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { TabswarmError, type ErrorCode } from '../shared/errors.ts';
import { expireSession } from '../server/coord/faults.ts';
import type { CoordinationClient, CoordinationOptions, SessionEvent, WatchEvent, Watcher } from '../server/coord/index.ts';
import { BACKENDS, uniquePath, type Backend } from '../server/coord/testing.ts';
import { until } from './helpers.ts';

async function open(t: TestContext, backend: Backend, options: CoordinationOptions = {}): Promise<CoordinationClient> {
  const c = backend.client(options);
  t.after(() => c.close());
  await c.connect();
  return c;
}

function record(c: CoordinationClient): SessionEvent[] {
  const events: SessionEvent[] = [];
  c.onSession((e) => events.push(e));
  return events;
}

function watcher(): { fn: Watcher; events: WatchEvent[] } {
  const events: WatchEvent[] = [];
  return { fn: (e) => events.push(e), events };
}

function code(expected: ErrorCode): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof TabswarmError, `expected ${expected}, got ${String(err)}`);
    assert.equal(err.code, expected, err.message);
    return true;
  };
}

for (const [name, make] of Object.entries(BACKENDS)) {
  describe(`coordination: ${name}`, () => {
    let backend: Backend;
    before(async () => {
      backend = await make();
    });
    after(() => backend.dispose());

    test('versioned data: ensure, get, compare-and-set, conflicts, remove', async (t) => {
      const c = await open(t, backend);
      const path = `${uniquePath('data')}/a/b`;
      await assert.rejects(c.get(path), code('COORD_NO_NODE'));
      assert.equal(await c.exists(path), null);
      await c.ensure(path, 'first');
      await c.ensure(path, 'ignored: it exists');
      assert.deepEqual(await c.get(path), { data: 'first', version: 0 });
      assert.equal(await c.set(path, 'second', 0), 1);
      await assert.rejects(c.set(path, 'stale', 0), code('COORD_VERSION_CONFLICT'));
      assert.equal(await c.set(path, 'any', -1), 2);
      assert.deepEqual(await c.get(path), { data: 'any', version: 2 });
      assert.deepEqual(await c.exists(path), { version: 2 });
      await assert.rejects(c.remove(path, 1), code('COORD_VERSION_CONFLICT'));
      assert.equal(await c.remove(path, 2), true);
      assert.equal(await c.remove(path), false);
      await assert.rejects(c.set(path, 'x', -1), code('COORD_NO_NODE'));
      await assert.rejects(c.get('no-slash'), code('COORD_BAD_ARGUMENT'));
      await assert.rejects(c.get('/trailing/'), code('COORD_BAD_ARGUMENT'));
      await assert.rejects(c.set('/x', 'y'.repeat(1024 * 1024 + 1), -1), code('COORD_BAD_ARGUMENT'));
      await assert.rejects(c.set('/x', 'y', -2), code('COORD_BAD_ARGUMENT'));
    });

    test('members are listed in registration order, with their data and owning session', async (t) => {
      const a = await open(t, backend);
      const b = await open(t, backend);
      const path = uniquePath('order');
      const names: string[] = [];
      for (const [client, data] of [[a, 'a1'], [b, 'b1'], [a, 'a2'], [b, 'b2'], [a, 'a3']] as const) names.push(await client.register(path, data));
      const members = await a.members(path);
      assert.deepEqual(members.map((m) => m.name), names);
      assert.deepEqual(members.map((m) => m.data), ['a1', 'b1', 'a2', 'b2', 'a3']);
      assert.deepEqual(members.map((m) => m.owner), [a, b, a, b, a].map((c) => c.session().id));
      for (let i = 1; i < members.length; i++) assert.ok(members[i]!.sequence > members[i - 1]!.sequence);
      assert.match(names[0]!, /^member-[0-9a-f]{16}-\d{10}$/);
      assert.match(await a.register(path, 'x', 'ps'), /^ps-/);
    });

    test('watches fire once each: creation, data change, deletion, children', async (t) => {
      const a = await open(t, backend);
      const b = await open(t, backend);
      const dir = uniquePath('watch');
      const path = `${dir}/node`;
      await a.ensure(dir);
      const created = watcher();
      assert.equal(await a.exists(path, created.fn), null);
      const children = watcher();
      assert.deepEqual(await a.members(dir, children.fn), []);
      await b.ensure(path, 'v0');
      await until(() => created.events.length === 1 && children.events.length === 1, 'creation and children watches');
      assert.deepEqual(created.events, [{ type: 'created', path }]);
      assert.deepEqual(children.events, [{ type: 'children', path: dir }]);

      const changed = watcher();
      await a.get(path, changed.fn);
      await b.set(path, 'v1', 0);
      await b.set(path, 'v2', 1);
      await until(() => changed.events.length > 0, 'the data watch');
      const deleted = watcher();
      assert.deepEqual(await a.get(path, deleted.fn), { data: 'v2', version: 2 });
      await b.remove(path);
      await until(() => deleted.events.length > 0, 'the deletion watch');
      // A later read confirms nothing else is on its way.
      await a.exists(path);
      assert.deepEqual(changed.events, [{ type: 'data', path }], 'one-shot: the second set did not fire it again');
      assert.deepEqual(deleted.events, [{ type: 'deleted', path }]);
      assert.deepEqual(children.events.length, 1);
    });

    test('a member vanishes when its session closes, and a members watcher fires', async (t) => {
      const a = await open(t, backend);
      const b = await open(t, backend);
      const path = uniquePath('close');
      await a.register(path, 'a');
      const w = watcher();
      assert.equal((await b.members(path, w.fn)).length, 1);
      await a.close();
      await until(() => w.events.length === 1, 'the members watch after a close');
      assert.deepEqual(w.events, [{ type: 'children', path }]);
      assert.deepEqual(await b.members(path), []);
      assert.equal(a.session().state, 'closed');
      await assert.rejects(a.get(path), code('COORD_CLOSED'));
      await a.close();
    });

    test('expiry: surfaced at once, members vanish, watches fire, a new session opens and the owner registers again', async (t) => {
      const a = await open(t, backend);
      const b = await open(t, backend);
      const path = uniquePath('expiry');
      const events = record(a);
      const first = a.session();
      // Re-registration is the caller's job, on the new session's 'connected'.
      const registrations: string[] = [await a.register(path, 'a')];
      a.onSession((e) => {
        if (e.state === 'connected' && e.previous) void a.register(path, 'a again').then((n) => registrations.push(n));
      });
      const fromB = watcher();
      assert.equal((await b.members(path, fromB.fn)).length, 1);
      const ownWatch = watcher();
      await a.get(path, ownWatch.fn);

      await expireSession(a);
      // The second connection takes the session over, so a sees its connection drop first (and
      // may take the session back before the fault tries again), then the expiry.
      const expiredAt = events.findIndex((e) => e.state === 'expired');
      assert.ok(expiredAt >= 0, JSON.stringify(events));
      for (const e of events.slice(0, expiredAt + 1)) assert.equal(e.session, first.id);
      assert.ok(events.slice(0, expiredAt).every((e) => e.state === 'disconnected' || e.state === 'connected'), JSON.stringify(events));
      assert.deepEqual(ownWatch.events, [{ type: 'session-lost', path }]);
      await until(() => fromB.events.length > 0, "b's watch on the members");

      await until(() => registrations.length === 2, 're-registration on the new session');
      const second = a.session();
      assert.equal(second.state, 'connected');
      assert.equal(second.generation, first.generation + 1);
      assert.notEqual(second.id, first.id);
      const connected = events.find((e) => e.state === 'connected' && e.generation === second.generation);
      assert.deepEqual(connected && { previous: connected.previous, session: connected.session }, { previous: first.id, session: second.id });
      const members = await b.members(path);
      assert.deepEqual(members.map((m) => [m.name, m.data, m.owner]), [[registrations[1], 'a again', second.id]]);
      assert.deepEqual(await a.get(`${path}/${registrations[1]}`), { data: 'a again', version: 0 });
    });

    test('clients closed before or while connecting end cleanly', async () => {
      // node-zookeeper-client used to throw "Unknown code" from its socket handler here.
      const clients = Array.from({ length: 10 }, () => backend.client());
      await Promise.all(
        clients.map(async (c, i) => {
          const connecting: Promise<string | undefined> = c.connect().then(() => undefined, (err: TabswarmError) => err.code);
          await new Promise((r) => setTimeout(r, i));
          await c.close();
          assert.ok([undefined, 'COORD_CLOSED'].includes(await connecting));
        }),
      );
      const c = backend.client();
      await c.close();
      await assert.rejects(c.connect(), code('COORD_CLOSED'));
      // Without connect(), the first operation opens the session and waits for it.
      const lazy = backend.client();
      try {
        const path = uniquePath('lazy');
        await lazy.ensure(path, 'x');
        assert.equal((await lazy.get(path)).data, 'x');
        assert.equal(lazy.session().state, 'connected');
      } finally {
        await lazy.close();
      }
    });

    test('increment under contention: two clients, every value once', async (t) => {
      const a = await open(t, backend);
      const b = await open(t, backend);
      const path = `${uniquePath('epoch')}/epoch`;
      const run = async (c: CoordinationClient) => {
        const got: number[] = [];
        for (let i = 0; i < 15; i++) got.push(await c.increment(path));
        return got;
      };
      const [fromA, fromB] = await Promise.all([run(a), run(b)]);
      for (const got of [fromA, fromB]) for (let i = 1; i < got.length; i++) assert.ok(got[i]! > got[i - 1]!, 'each client sees its values grow');
      assert.deepEqual([...fromA, ...fromB].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1));
      assert.deepEqual(await a.get(path), { data: '30', version: 30 });
    });

    test('a quick server restart: the same session reconnects, members and watches survive', async (t) => {
      // "Quick" means quicker than the session timeout: the client rightly gives a session up
      // after a whole timeout of silence. So the test takes the longest timeout the server
      // allows (60 s) and checks that the restart fitted in it, rather than assuming that a
      // JVM on a loaded 2-core machine restarts within some shorter time.
      const options = { sessionTimeoutMs: 60000 };
      const a = await open(t, backend, options);
      const b = await open(t, backend, options);
      const path = uniquePath('restart');
      const member = await a.register(path, 'a');
      await b.ensure(`${path}-data`, 'before');
      const w = watcher();
      await b.get(`${path}-data`, w.fn);
      const events = record(a);
      const id = a.session().id;

      const timeout = a.session().timeoutMs;
      assert.equal(timeout, 60000, 'the negotiated session timeout');
      const stoppedAt = Date.now();
      await backend.restartServer();
      const restartMs = Date.now() - stoppedAt;
      assert.ok(restartMs < timeout, `the restart (${restartMs} ms) was quicker than the session timeout`);
      await until(() => a.session().state === 'connected' && events.some((e) => e.state === 'disconnected'), 'a to see the drop and reconnect', 2 * timeout + 30_000);
      const expired = events.find((e) => e.state === 'expired');
      if (expired) {
        // The promise is "a session survives a restart the client sees within its timeout". On
        // a machine loaded enough that the JVM's restart plus the reconnect took longer, the
        // client must have given the session up only after a whole timeout of silence.
        const silence = Number(/no answer from ZooKeeper for (\d+) ms/.exec(expired.reason ?? '')?.[1] ?? NaN);
        assert.ok(silence >= timeout, `the session was given up only after a whole timeout of silence (${expired.reason})`);
        t.diagnostic(`the restart took ${restartMs} ms and the client heard nothing for ${silence} ms (>= the ${timeout} ms timeout): session survival could not be judged on this run`);
        return;
      }
      assert.equal(a.session().id, id);
      assert.deepEqual(events.map((e) => [e.state, e.session]), [['disconnected', id], ['connected', id]]);
      assert.deepEqual((await b.members(path)).map((m) => m.name), [member]);
      await a.set(`${path}-data`, 'after', 0);
      await until(() => w.events.length > 0, 'a watch set before the restart to fire after it');
      assert.deepEqual(w.events, [{ type: 'data', path: `${path}-data` }]);
    });

    test('server down longer than the session timeout: expiry reported by the client itself, new session once it is back', async (t) => {
      const a = await open(t, backend, { sessionTimeoutMs: 1500, opTimeoutMs: 30000 });
      const path = uniquePath('outage');
      const old = await a.register(path, 'a');
      const first = a.session();
      assert.equal(first.timeoutMs, 1500);
      const events = record(a);
      const pending = a.get(`${path}/${old}`).then(() => 'answered', (err: TabswarmError) => err.code);

      await backend.stopServer();
      await until(() => events.some((e) => e.state === 'expired'), 'a to give its session up', first.timeoutMs * 3 + 30_000, 20);
      assert.deepEqual(events.map((e) => e.state), ['disconnected', 'expired']);
      // The client gave the session up itself, after a whole timeout without an answer (no
      // server was up to say so), whatever the server's shutdown and this machine's load took.
      const expired = events.find((e) => e.state === 'expired')!;
      const silence = Number(/no answer from ZooKeeper for (\d+) ms/.exec(expired.reason ?? '')?.[1] ?? NaN);
      assert.ok(silence >= first.timeoutMs, `expired by the client after ${silence} ms of silence (${expired.reason})`);
      // The get was either answered before the stop or failed with the session.
      assert.ok(['answered', 'COORD_SESSION_EXPIRED'].includes(await pending));

      await backend.startServer();
      await until(() => a.session().state === 'connected', 'a new session', 30000);
      assert.equal(a.session().generation, first.generation + 1);
      assert.equal(events.find((e) => e.state === 'connected')?.previous, first.id);
      const again = await a.register(path, 'a again');
      // The old session, which the restarted server restored, is ended by the client rather
      // than left to time out, so its member goes too.
      const b = await open(t, backend);
      await until(async () => (await b.members(path)).map((m) => m.name).join() === again, 'only the new member to remain', 15000);
    });
  });
}
