// The ZooKeeper adapter (zookeeper.ts): its guard against the library's error table (a reply with
// a code the library does not know must fail its request, not throw from the socket handler),
// and requests made before the session is connected (they must carry the credentials).
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import zookeeper from 'node-zookeeper-client';
import { startZooKeeper } from '../zk/launcher.ts';
import { PERMS, digestId } from './raw.ts';
import { zookeeperConnector } from './zookeeper.ts';

type ZkException = InstanceType<typeof zookeeper.Exception>;
// `create` is exported by the library but missing from its types.
const create = (code: number, path?: string): ZkException => (zookeeper.Exception as unknown as { create(code: number, path?: string): ZkException }).create(code, path);

test('an error code the library does not know (3.8 UNKNOWN_SESSION, -12) becomes an Exception, not a throw', () => {
  // The connection manager answers a request with `Exception.create(header.err)`; before the
  // guard this threw "Unknown code: -12" out of the socket's data handler.
  const e = create(-12);
  assert.ok(e instanceof zookeeper.Exception);
  assert.ok(e instanceof Error);
  assert.equal(e.getCode(), -12);
  assert.equal(e.getName(), 'ZOOKEEPER_ERROR_-12');
  assert.match(e.message, /\[-12\]/);
  const withPath = create(-127, '/tabswarm/x');
  assert.equal(withPath.getPath(), '/tabswarm/x');
  // Known codes are untouched.
  const known = create(zookeeper.Exception.NO_NODE);
  assert.equal(known.getName(), 'NO_NODE');
  assert.equal(known.getCode(), -101);
});

test('a request made while the session is still connecting carries the credentials (real ZooKeeper, digest ACL)', { timeout: 60_000 }, async () => {
  // The library queues its auth packet behind the requests already waiting when the socket
  // connects: such a request reached the server unauthenticated and failed NO_AUTH (every
  // first read after a session expiry, on a cluster's ACL-protected znodes).
  const zk = await startZooKeeper({ servers: 1 });
  const connector = zookeeperConnector(zk.connectionString);
  const auth = { user: 'node', password: 'secret', root: '/acl-test' };
  const owner = connector.open({ sessionTimeoutMs: 10_000, auth });
  try {
    await owner.create('/acl-test', 'x', 'persistent', [{ scheme: 'digest', id: digestId(auth), perms: PERMS.all }]);
    await owner.create('/acl-test/child', '', 'persistent', [{ scheme: 'digest', id: digestId(auth), perms: PERMS.all }]);
    for (let i = 0; i < 5; i++) {
      const fresh = connector.open({ sessionTimeoutMs: 10_000, auth });
      try {
        assert.equal(fresh.state(), 'connecting', 'the request below is made before the handshake');
        assert.deepEqual(await fresh.getChildren('/acl-test'), ['child']);
        assert.equal((await fresh.getData('/acl-test')).data, 'x');
      } finally {
        await fresh.close();
      }
    }
    // Without the credentials the ACL still refuses: the check above is the ACL's, not a bypass.
    const stranger = connector.open({ sessionTimeoutMs: 10_000 });
    try {
      await assert.rejects(stranger.getChildren('/acl-test'), (e: unknown) => (e as { code?: string }).code === 'NO_AUTH');
    } finally {
      await stranger.close();
    }
  } finally {
    await owner.close();
    await zk.stop();
  }
});
