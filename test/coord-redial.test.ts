/**
 * A reconnect whose handshake ZooKeeper never answers must not cost the session.
 *
 * node-zookeeper-client puts no deadline on a reconnect once TCP is up, so a server that accepts
 * the socket but never answers the connect request (a JVM still starting, a half-dead path) used
 * to hold the attempt until the session timeout ran out, and the client gave a live session up.
 * That is how "a quick server restart" lost its session on a loaded machine. Here a TCP proxy
 * between the client and a real ZooKeeper cuts the connection, then swallows the next attempt
 * (accepts it, reads the request, answers nothing), then lets traffic through again: the client
 * must start the attempt over by itself and get its same session back, with nothing lost.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { zookeeperCoordination } from '../server/coord/index.ts';
import type { SessionEvent } from '../server/coord/types.ts';
import { startZooKeeper } from '../server/zk/launcher.ts';
import { until } from './helpers.ts';

type Mode = 'pass' | 'swallow';

/** A loopback TCP proxy to `port` that can drop every link and swallow new ones. */
async function proxy(port: number) {
  let mode: Mode = 'pass';
  const live = new Set<Socket>();
  let swallowed = 0;
  const server = createServer((client) => {
    live.add(client);
    client.on('close', () => live.delete(client));
    client.on('error', () => {});
    if (mode === 'swallow') {
      // Accept, read, never answer: the handshake hangs until the client gives it up.
      swallowed += 1;
      client.on('data', () => {});
      return;
    }
    const upstream = connect(port, '127.0.0.1');
    live.add(upstream);
    upstream.on('close', () => { live.delete(upstream); client.destroy(); });
    upstream.on('error', () => {});
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    swallowed: () => swallowed,
    cut(next: Mode) {
      mode = next;
      for (const s of live) s.destroy();
    },
    pass() {
      mode = 'pass';
    },
    close: () => new Promise<void>((r) => { for (const s of live) s.destroy(); server.close(() => r()); }),
  };
}

test('a reconnect handshake that is never answered is started over, and the session survives', async (t) => {
  const zk = await startZooKeeper({ servers: 1 });
  t.after(() => zk.stop());
  const link = await proxy(Number(zk.connectionString.split(':').pop()));
  t.after(() => link.close());

  // 30 s: the client redials every timeout/5 = 6 s, so a swallowed attempt costs 6 s of a 30 s
  // budget, leaving room for a loaded machine.
  const a = zookeeperCoordination(link.address, { sessionTimeoutMs: 30000 });
  t.after(() => a.close());
  await a.connect();
  const events: SessionEvent[] = [];
  a.onSession((e) => events.push(e));
  const id = a.session().id;
  const path = `/redial-${process.pid}`;
  const member = await a.register(path, 'a');

  link.cut('swallow');
  await until(() => link.swallowed() >= 1, 'the client to try again and be swallowed', 30000);
  link.pass();
  await until(() => a.session().state === 'connected' || events.some((e) => e.state === 'expired'), 'the client to reconnect', 60000);

  assert.deepEqual(events.map((e) => [e.state, e.session]), [['disconnected', id], ['connected', id]], 'the same session, dropped once and back, never expired');
  assert.deepEqual((await a.members(path)).map((m) => m.name), [member], 'its ephemeral member survived');
});
