/**
 * The ZooKeeper launcher (server/zk) and `tabswarm zk`, against Debian's ZooKeeper: a 3-server
 * ensemble that keeps serving after its leader is SIGKILLed, the command's parseable line and
 * clean stop, and the catalogued errors for a missing install and a server that cannot start.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { TabswarmError } from '../shared/errors.ts';
import { zookeeperCoordination, type SessionEvent } from '../server/coord/index.ts';
import { fourLetter, isOk, serverMode } from '../server/zk/four-letter.ts';
import { startZooKeeper } from '../server/zk/launcher.ts';
import { spawnCli, until } from './helpers.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('ZooKeeper launcher', () => {
  test('an ensemble of 3 serves, and keeps serving with its leader SIGKILLed', async (t) => {
    const zk = await startZooKeeper({ servers: 3 });
    t.after(() => zk.stop());
    assert.equal(zk.connectionString.split(',').length, 3);
    const modes = [];
    for (const s of zk.servers) {
      assert.equal(await isOk('127.0.0.1', s.ports.clientPort), true, `server ${s.id} answers ruok`);
      modes.push(await serverMode('127.0.0.1', s.ports.clientPort));
    }
    assert.deepEqual([...modes].sort(), ['follower', 'follower', 'leader']);

    const coord = zookeeperCoordination(zk.connectionString, { sessionTimeoutMs: 10000 });
    t.after(() => coord.close());
    await coord.connect();
    const me = await coord.register('/ensemble/members', 'me');
    assert.equal(await coord.increment('/ensemble/epoch'), 1);

    const leader = zk.servers[modes.indexOf('leader')]!;
    const pid = leader.pid!;
    await zk.stopServer(leader.id, 'SIGKILL');
    assert.equal(alive(pid), false, 'the killed JVM is reaped');
    // The two left elect a leader and serve; the client moves to one of them if it must.
    await until(async () => (await coord.increment('/ensemble/epoch')) >= 2, 'a write after the leader died', 30000, 250);
    assert.deepEqual((await coord.members('/ensemble/members')).map((m) => m.name), [me]);
    const left = zk.servers.filter((s) => s !== leader);
    await until(async () => (await Promise.all(left.map((s) => serverMode('127.0.0.1', s.ports.clientPort)))).sort().join() === 'follower,leader', 'a new leader');

    const pids = left.map((s) => s.pid!);
    await zk.stop();
    for (const p of pids) assert.equal(alive(p), false, `JVM ${p} is reaped at stop`);
    assert.equal(existsSync(zk.dataDir), false, 'the temp data dir is removed');
  });

  test('ZK_MISSING names the package when java or the jars are missing', async () => {
    for (const options of [{ java: '/nonexistent/java' }, { jarDir: '/nonexistent' }]) {
      await assert.rejects(startZooKeeper(options), (err: unknown) => {
        assert.ok(err instanceof TabswarmError);
        assert.equal(err.code, 'ZK_MISSING');
        assert.match(err.message, /\/nonexistent/);
        assert.match(err.message, /apt-get install -y zookeeper/);
        return true;
      });
    }
  });

  test('ZK_START_FAILED quotes the server log when it cannot start (client port in use)', async (t) => {
    // It hangs up on whoever connects (the launcher's ruok probes), like a foreign service.
    const busy = createServer((socket) => socket.destroy());
    t.after(() => new Promise((r) => busy.close(r)));
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    await assert.rejects(startZooKeeper({ port }), (err: unknown) => {
      assert.ok(err instanceof TabswarmError);
      assert.equal(err.code, 'ZK_START_FAILED');
      assert.match(err.message, new RegExp(`port ${port}`));
      assert.match(err.message, /Address already in use/);
      return true;
    });
  });
});

describe('a ZooKeeper that stops answering', () => {
  test('SIGSTOP: the client fences (disconnected) at 2/3 of the timeout, expires at it, recovers after SIGCONT', async (t) => {
    const zk = await startZooKeeper({ servers: 1 });
    t.after(() => zk.stop());
    const coord = zookeeperCoordination(zk.connectionString, { sessionTimeoutMs: 3000, opTimeoutMs: 20000 });
    t.after(() => coord.close());
    await coord.connect();
    const timeout = coord.session().timeoutMs;
    assert.equal(timeout, 3000, 'the negotiated session timeout');
    await coord.register('/frozen/members', 'me');
    const events: SessionEvent[] = [];
    coord.onSession((e) => events.push(e));
    const pid = zk.servers[0]!.pid!;
    // The socket stays open and silent: node-zookeeper-client alone would never notice.
    process.kill(pid, 'SIGSTOP');
    try {
      // Judged by the silence the client measured when it acted, not by this process's wall
      // clock: on a loaded machine a timer may fire late, but never early.
      await until(() => events.some((e) => e.state === 'expired'), 'expired', timeout * 3 + 30_000, 20);
      assert.deepEqual(events.map((e) => e.state), ['disconnected', 'expired'], 'fenced first, while the session could still be alive on the server');
      const silence = (e: SessionEvent) => Number(/no answer from ZooKeeper for (\d+) ms/.exec(e.reason ?? '')?.[1] ?? NaN);
      const fencedAt = silence(events[0]!);
      const expiredAt = silence(events[1]!);
      assert.ok(fencedAt >= (2 * timeout) / 3 && fencedAt < timeout, `fenced after ${fencedAt} ms of silence: at 2/3 of the ${timeout} ms timeout, before it (${events[0]!.reason})`);
      assert.ok(expiredAt >= timeout, `expired after ${expiredAt} ms of silence, the whole ${timeout} ms timeout (${events[1]!.reason})`);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until(() => coord.session().state === 'connected' && coord.session().generation === 2, 'a new session after SIGCONT', 30000);
    // The old member goes with the old session (ended by the client, or expired by the server).
    await until(async () => (await coord.members('/frozen/members')).length === 0, 'the old member to vanish', 15000);
  });
});

describe('tabswarm zk', () => {
  test('prints a parseable connection string, serves, and stops cleanly on SIGTERM', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tabswarm-zk-cli-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const proc = spawnCli(['zk', '--data-dir', dir, '--keep']);
    t.after(() => proc.kill('SIGKILL'));
    const connect = await until(() => {
      if (proc.child.exitCode !== null) throw new Error(`tabswarm zk exited: ${proc.output()}`);
      return /zookeeper ready: --zk (\S+)/.exec(proc.output())?.[1];
    }, 'the ready line', 30000);
    assert.match(connect, /^127\.0\.0\.1:\d+$/);
    const pid = Number(/server 1 pid (\d+)/.exec(proc.output())?.[1]);
    assert.ok(alive(pid));
    // Should the test fail before the SIGTERM, the SIGKILL above would orphan the JVM.
    t.after(() => alive(pid) && process.kill(pid, 'SIGKILL'));
    const port = Number(connect.split(':')[1]);
    assert.equal(await fourLetter('127.0.0.1', port, 'ruok'), 'imok');

    const coord = zookeeperCoordination(connect);
    await coord.connect();
    await coord.ensure('/cli', 'works');
    assert.equal((await coord.get('/cli')).data, 'works');
    await coord.close();

    await proc.kill('SIGTERM');
    assert.equal(proc.child.exitCode, 0, proc.output());
    assert.match(proc.output(), /zookeeper stopped/);
    assert.equal(alive(pid), false, 'the JVM is stopped with it');
    assert.ok(existsSync(join(dir, 'server-1', 'zookeeper.log')), '--keep keeps the log and data');
  });
});
