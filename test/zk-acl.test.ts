/**
 * ZooKeeper ACLs (issue 13): a cluster's znodes carry a digest ACL derived from its deployment
 * secret, and nothing derived from the secret is stored where it can be read.
 *
 * - The coordination primitives, against both backends (the in-memory twin must refuse what
 *   ZooKeeper refuses): znodes under the guarded root are private to the credentials; a client
 *   without them, or with other ones, cannot read, list, create under, change or delete them
 *   (COORD_NO_AUTH), nor read their ACL; the ancestors stay open to other deployments.
 * - A real cluster: a client without the cluster's credentials cannot read its config, cannot
 *   create a member, cannot change the chain; the member it tried to insert never enters the
 *   chain, and a second real node joins as usual. The config holds no secret-derived value.
 * - A cluster root someone else created first (open) is refused with CHAIN_CONFIG_MISMATCH.
 * - The config holds the run id the first node fixed: both nodes sign with one key, and another
 *   cluster under the same secret (another run) with another.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TabswarmError, type ErrorCode } from '../shared/errors.ts';
import { clusterAuth, startChainNode } from '../server/chain/node.ts';
import { zookeeperCoordination, type CoordinationClient } from '../server/coord/index.ts';
import { BACKENDS, uniquePath } from '../server/coord/testing.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { SECRET, currentChain, settled, startNode, type NodeProc } from './chain-tools.ts';
import { until } from './helpers.ts';

const code = (c: ErrorCode) => (err: unknown) => err instanceof TabswarmError && err.code === c;

for (const [name, make] of Object.entries(BACKENDS)) {
  test(`${name}: znodes under the guarded root are private to its credentials`, { timeout: 60000 }, async (t) => {
    const backend = await make();
    t.after(() => backend.dispose());
    const root = uniquePath('acl');
    const auth = { user: 'tabswarm', password: 'right-password', root };
    const owner = backend.client({ sessionTimeoutMs: 5000, auth });
    const stranger = backend.client({ sessionTimeoutMs: 5000 });
    const impostor = backend.client({ sessionTimeoutMs: 5000, auth: { ...auth, password: 'wrong-password' } });
    t.after(async () => {
      for (const c of [owner, stranger, impostor]) await c.close();
    });
    for (const c of [owner, stranger, impostor]) await c.connect();

    await owner.ensure(`${root}/config`, '{"model":"m"}');
    const member = await owner.register(`${root}/members`, '{"url":"http://a/"}', 'node');
    assert.equal(await owner.isPrivate(root), true);
    assert.equal(await owner.isPrivate(`${root}/config`), true);
    assert.equal((await owner.get(`${root}/config`)).data, '{"model":"m"}');
    // The ancestors are shared with other deployments: open, so not private.
    assert.equal(await owner.isPrivate('/test'), false);

    for (const c of [stranger, impostor]) {
      assert.ok(await c.exists(`${root}/config`), 'existence is not guarded (ZooKeeper does not check exists)');
      await assert.rejects(c.get(`${root}/config`), code('COORD_NO_AUTH'));
      await assert.rejects(c.members(`${root}/members`), code('COORD_NO_AUTH'));
      await assert.rejects(c.register(`${root}/members`, '{"url":"http://evil/"}', 'node'), code('COORD_NO_AUTH'));
      await assert.rejects(c.set(`${root}/config`, '{}', -1), code('COORD_NO_AUTH'));
      await assert.rejects(c.remove(`${root}/members/${member}`), code('COORD_NO_AUTH'));
      await assert.rejects(c.ensure(`${root}/other`), code('COORD_NO_AUTH'));
      await assert.rejects(c.isPrivate(root), code('COORD_NO_AUTH'));
    }
    assert.deepEqual((await owner.members(`${root}/members`)).map((m) => m.name), [member], 'nothing was added');
    assert.equal((await owner.get(`${root}/config`)).version, 0, 'nothing was changed');

    // The credentials survive a reconnect (ZooKeeper forgets them with the connection).
    await backend.restartServer();
    await until(async () => (await owner.get(`${root}/config`).catch(() => undefined))?.data === '{"model":"m"}', 'the owner to read again after a restart', 30000, 100);

    // A root someone else created open is not private to the owner.
    const squat = uniquePath('squat');
    await stranger.ensure(squat);
    const late = backend.client({ sessionTimeoutMs: 5000, auth: { ...auth, root: squat } });
    t.after(() => late.close());
    await late.connect();
    await late.ensure(squat);
    assert.equal(await late.isPrivate(squat), false);
  });
}

let zk: ZooKeeperCluster;
const procs: NodeProc[] = [];
let stranger: CoordinationClient | undefined;

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
});

after(async () => {
  await stranger?.close();
  for (const p of procs) await p.kill('SIGKILL').catch(() => {});
  await zk?.stop();
});

test('a client without the cluster\'s credentials cannot read, join or change it', { timeout: 120000 }, async () => {
  const cluster = 'acl';
  const root = `/tabswarm/clusters/${cluster}`;
  const args = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync'];
  procs.push(await startNode(zk.connectionString, cluster, args));
  const before = await settled(procs, 1);

  stranger = zookeeperCoordination(zk.connectionString, { sessionTimeoutMs: 5000 });
  await stranger.connect();
  await assert.rejects(stranger.get(`${root}/config`), code('COORD_NO_AUTH'), 'reads the config');
  await assert.rejects(stranger.get(`${root}/chain`), code('COORD_NO_AUTH'), 'reads the chain');
  await assert.rejects(stranger.members(`${root}/members`), code('COORD_NO_AUTH'), 'lists the members');
  const fake = JSON.stringify({ url: 'http://127.0.0.1:9/', version: 1e9 });
  await assert.rejects(stranger.register(`${root}/members`, fake, 'node'), code('COORD_NO_AUTH'), 'creates a member');
  const forged = JSON.stringify({ epoch: before.epoch + 1, nodes: [{ name: 'node-evil-0000000099', url: 'http://127.0.0.1:9/', version: 1e9 }], warm: true });
  await assert.rejects(stranger.set(`${root}/chain`, forged, -1), code('COORD_NO_AUTH'), 'changes the chain');
  await assert.rejects(stranger.set(`${root}/config`, '{}', -1), code('COORD_NO_AUTH'), 'changes the config');
  await assert.rejects(stranger.remove(`${root}/members/${before.self}`), code('COORD_NO_AUTH'), 'removes a member');

  // The config holds what the nodes must agree on, nothing derived from the secret.
  const insider = zookeeperCoordination(zk.connectionString, { sessionTimeoutMs: 5000, auth: await clusterAuth(SECRET, cluster) });
  await insider.connect();
  try {
    const config = JSON.parse((await insider.get(`${root}/config`)).data) as Record<string, unknown>;
    assert.deepEqual(Object.keys(config).sort(), ['dataset', 'layoutHash', 'model', 'recordHorizon', 'recordMax', 'replication', 'run', 'seed', 'shards']);
    assert.match(String(config.run), /^[0-9a-f]{32}$/, 'the run id the first node fixed');
    assert.equal(await insider.isPrivate(root), true);
  } finally {
    await insider.close();
  }

  // A real second node joins as usual; the member the stranger tried to insert never shows.
  procs.push(await startNode(zk.connectionString, cluster, args));
  const after = await settled(procs.slice(0, 2), 2);
  assert.ok(after.epoch > before.epoch);
  assert.deepEqual(after.nodes.map((n) => n.url).sort(), procs.map((p) => p.url).sort());
  assert.ok(!(await currentChain(procs)).nodes.some((n) => n.url.includes(':9/')), 'the inserted member never entered the chain');

  // One run, one signing key: both nodes of the cluster publish the same; another cluster
  // under the same secret is another run, with another key.
  const keyOf = async (url: string) => ((await (await fetch(new URL('/api/model', url))).json()) as { weightsKey: { publicKey: string } }).weightsKey.publicKey;
  assert.equal(await keyOf(procs[0]!.url), await keyOf(procs[1]!.url));
  procs.push(await startNode(zk.connectionString, 'acl-other-run', args));
  assert.notEqual(await keyOf(procs[2]!.url), await keyOf(procs[0]!.url), 'another run signs with another key');
});

test('a cluster root someone else created first is refused with CHAIN_CONFIG_MISMATCH', { timeout: 60000 }, async () => {
  const squatter = zookeeperCoordination(zk.connectionString, { sessionTimeoutMs: 5000 });
  await squatter.connect();
  try {
    await squatter.ensure('/tabswarm/clusters/squatted/members');
  } finally {
    await squatter.close();
  }
  await assert.rejects(
    startChainNode({ zk: zk.connectionString, cluster: 'squatted', secret: SECRET, server: { model: 'mnist-logreg', dataset: 'synthetic' } }),
    (err: unknown) => err instanceof TabswarmError && err.code === 'CHAIN_CONFIG_MISMATCH' && /not protected by this cluster's credentials/.test(err.message),
  );
});
