/**
 * Membership keeps watching ZooKeeper after a read that failed. A failed read sets no watch
 * (the coordination client cancels it); a node that still counted that path as watched never
 * watched it again, so it missed every later membership change. In the reference experiment
 * two survivors had each had one pass fail while the machine was saturated (ZooKeeper slow);
 * when the head was SIGKILLed, neither noticed, and the chain kept its dead head until that
 * node came back.
 *
 * A real ZooKeeper and three Membership instances, each on its own session. Two of them get
 * one members read that fails (injected in front of the real client: the failure ZooKeeper
 * gave them under load, COORD_UNAVAILABLE); then the third leaves. The two must reconfigure.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TabswarmError } from '../../shared/errors.ts';
import { zookeeperCoordination, type CoordinationClient } from '../coord/index.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../zk/launcher.ts';
import { until } from '../../test/helpers.ts';
import { Membership } from './membership.ts';

let zk: ZooKeeperCluster | undefined;
const clients: CoordinationClient[] = [];
const members: Membership[] = [];

after(async () => {
  for (const m of members) await m.stop().catch(() => {});
  for (const c of clients) await c.close().catch(() => {});
  await zk?.stop();
});

/** The real client, whose next members() read can be made to fail once (no watch set, as on a real failure). */
function failable(real: CoordinationClient): { coord: CoordinationClient; failNextMembers(): void; failed: () => number } {
  let armed = false;
  let failed = 0;
  const coord = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'members') {
        return (path: string, watcher?: unknown) => {
          if (armed) {
            armed = false;
            failed += 1;
            return Promise.reject(new TabswarmError('COORD_UNAVAILABLE', { op: 'members', path, servers: 'test', ms: 0 }));
          }
          return target.members(path, watcher as never);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { coord, failNextMembers: () => (armed = true), failed: () => failed };
}

test('a node whose watched members read failed once still sees the next membership change', { timeout: 120_000 }, async () => {
  zk = await startZooKeeper({ servers: 1 });
  const make = async () => {
    const c = zookeeperCoordination(zk!.connectionString, { sessionTimeoutMs: 10_000 });
    await c.connect();
    clients.push(c);
    return c;
  };
  const a = failable(await make());
  const b = failable(await make());
  const cClient = await make();
  const [ma, mb] = [new Membership(a.coord, 'watch'), new Membership(b.coord, 'watch')];
  members.push(ma, mb);
  await ma.join('http://127.0.0.1:9001/');
  await mb.join('http://127.0.0.1:9002/');
  await until(() => ma.view.nodes.length === 2 && mb.view.nodes.length === 2, 'a chain of 2', 20_000, 50);

  // Both survivors-to-be: their next members read (the one a change triggers, with the watch) fails.
  a.failNextMembers();
  b.failNextMembers();
  const mc = new Membership(cClient, 'watch');
  members.push(mc);
  await mc.join('http://127.0.0.1:9003/');
  await until(() => ma.view.nodes.length === 3 && mb.view.nodes.length === 3, 'the third node in every view (the retried passes read it)', 20_000, 50);
  assert.equal(a.failed(), 1, 'the injected failure hit a');
  assert.equal(b.failed(), 1, 'and b');

  // The third node leaves (its session closed: its registration goes at once). Nobody else is
  // left to write the new chain: a and b must notice through their members watch.
  const epoch = ma.view.epoch;
  await mc.stop();
  await cClient.close();
  await until(() => ma.view.epoch > epoch && ma.view.nodes.length === 2 && mb.view.nodes.length === 2, 'the chain to drop the node that left', 20_000, 50)
    .catch((err) => assert.fail(`${(err as Error).message}; views: a ${JSON.stringify(ma.view.nodes.map((n) => n.url))} at epoch ${ma.view.epoch}, b ${JSON.stringify(mb.view.nodes.map((n) => n.url))}`));
});
