import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer, type Built } from '../app.ts';
import { Membership } from '../chain/membership.ts';
import { ChainReplica, REPLICA_DEFAULTS } from '../chain/replica.ts';
import { chain } from '../chain/strategy.ts';
import { resolveOptions } from '../config.ts';
import { MemoryZooKeeper, memoryCoordination } from '../coord/index.ts';
import { loadDataset } from '../data.ts';
import { until } from '../../test/helpers.ts';
import { getRule } from '../ps/rules.ts';
import { createStrategy } from '../strategies/index.ts';
import { resolveAdminToken } from './admin.ts';

const TOKEN = 'admin-token-for-tests-0123456789';
const data = loadDataset('synthetic');
const auth = { authorization: `Bearer ${TOKEN}` };

type Method = 'GET' | 'HEAD' | 'POST';
/** A value for each path parameter the admin routes use, so a route is reached, not 404. */
const PARAMS: Record<string, string> = { k: '0', name: 'ps', id: '1' };

/**
 * Every (method, URL) under /api/admin/ the app registered, read from Fastify's own route tree
 * (`printRoutes({ commonPrefix: false })`: one line per node, four columns per level, the
 * node's path relative to its parent, then its methods), so a route added later is checked
 * without anyone adding it to a list.
 */
function adminRoutes(app: FastifyInstance): [Method, string][] {
  const stack: string[] = [];
  const out: [Method, string][] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    if (!line.trim()) continue;
    const m = /^((?:[│ ] {3}|[├└]── )*)(\S.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    // A line this cannot read would be a route silently left out.
    assert.ok(m && m[1]!.length > 0 && m[1]!.length % 4 === 0, `route tree line not understood: ${JSON.stringify(line)}`);
    const depth = [...m![1]!].length / 4 - 1;
    stack.length = depth;
    stack.push(m![2]!);
    const route = stack.join('');
    if (!m![3] || !route.startsWith('/api/admin/')) continue;
    const path = route.replace(/:(\w+)/g, (_, p: string) => PARAMS[p] ?? assert.fail(`no test value for the route parameter :${p} of ${route}`));
    for (const method of m![3].split(', ')) out.push([method as Method, path]);
  }
  return out;
}

/** Asserts that `method url` without the right token is refused with 401 ADMIN_UNAUTHORIZED. */
async function assertRefused(app: FastifyInstance, method: Method, url: string, headers: Record<string, string>): Promise<void> {
  const res = await app.inject({ method, url, headers, ...(method === 'POST' ? { payload: { lr: 1 } } : {}) });
  assert.equal(res.statusCode, 401, `${method} ${url} ${JSON.stringify(headers)}`);
  if (method === 'HEAD') return; // no body
  const body = res.json();
  assert.equal(body.code, 'ADMIN_UNAUTHORIZED', `${method} ${url}`);
  assert.match(body.message, /^Admin call refused: /);
  assert.equal(body.retryable, false);
}

describe('admin API', () => {
  let built: Built;
  let dir: string;
  const logLines: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tabswarm-admin-'));
    const stream = new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) });
    built = await buildServer({
      model: 'mnist-logreg', data, dataset: 'synthetic', evalEveryMs: 0, strategy: 'checkpoint',
      checkpointDir: dir, psShards: 3, checkpointMode: 'sync', adminToken: TOKEN, logger: { level: 'warn', stream },
    });
  });
  after(async () => {
    await built.app.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('every registered admin route, without the token, is refused with 401 JSON and logged', async () => {
    await built.app.ready();
    const calls = adminRoutes(built.app);
    // The list comes from the router: it must hold the ones named here and more.
    for (const known of ['GET /api/admin/shards', 'POST /api/admin/shards/0/drop', 'POST /api/admin/checkpoint', 'GET /api/admin/checkpoints', 'GET /api/admin/console',
      'POST /api/admin/run', 'POST /api/admin/nodes/ps/kill', 'POST /api/admin/workers/1/disconnect']) {
      assert.ok(calls.some(([m, u]) => `${m} ${u}` === known), `${known} in ${JSON.stringify(calls)}`);
    }
    for (const [method, url] of calls) {
      for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: TOKEN }] as Record<string, string>[]) await assertRefused(built.app, method, url, headers);
    }
    assert.equal(logLines.filter((l) => l.includes('admin call refused')).length, 3 * calls.length);
    assert.equal(built.ps.store.version, 0);
    assert.equal(built.ps.store.optimizer.lr, built.options.lr, 'nothing changed');
    const metrics = await built.app.inject({ url: '/metrics' });
    assert.match(metrics.body, new RegExp(`tabswarm_frames_rejected_total\\{reason="ADMIN_UNAUTHORIZED",transport="http"\\} ${3 * calls.length}\n`));
  });

  test('a chain node\'s admin routes too (ZooKeeper expiry, chain history), from the router', async () => {
    const zk = new MemoryZooKeeper({ minSessionTimeoutMs: 500, maxSessionTimeoutMs: 60000 });
    const coord = memoryCoordination(zk, { sessionTimeoutMs: 5000 });
    await coord.connect();
    const secret = 'admin-test-chain-secret-0123456789';
    const replica = new ChainReplica(new Membership(coord, 'admin-routes'), { ...REPLICA_DEFAULTS, mode: 'sync', secret, fastDetect: false });
    // As server/chain/node.ts builds a node, without listening or joining the chain.
    const server = { model: 'mnist-logreg', data, dataset: 'synthetic', evalEveryMs: 0, secret, adminToken: TOKEN } as const;
    const node = await buildServer({
      ...server, strategyInstance: chain(createStrategy('none', resolveOptions(server)), replica), chain: { replica, coord, cluster: 'admin-routes', reads: 'relaxed' },
    });
    try {
      await node.app.ready();
      const calls = adminRoutes(node.app);
      for (const known of ['POST /api/admin/zk/expire', 'GET /api/admin/chain/history']) assert.ok(calls.some(([m, u]) => `${m} ${u}` === known), `${known} in ${JSON.stringify(calls)}`);
      for (const [method, url] of calls) {
        for (const headers of [{}, { authorization: 'Bearer wrong' }] as Record<string, string>[]) await assertRefused(node.app, method, url, headers);
      }
      assert.equal(coord.session().state, 'connected', 'the refused expiry expired nothing');
    } finally {
      await node.app.close();
      await coord.close();
      zk.dispose();
    }
  });

  test('with the token: shards, drop with recovery, checkpoint, files', async () => {
    const shards = (await built.app.inject({ url: '/api/admin/shards', headers: auth })).json();
    assert.equal(shards.shards.length, 3);
    assert.deepEqual(shards.shards.map((s: { start: number }) => s.start), [0, 2617, 5234]);

    const before = Float32Array.from(built.ps.store.weights);
    const dropped = await built.app.inject({ method: 'POST', url: '/api/admin/shards/1/drop', headers: auth });
    assert.equal(dropped.statusCode, 200, dropped.body);
    const report = dropped.json();
    assert.equal(report.shard, 1);
    assert.equal(report.recovery.mode, 'partial');
    assert.deepEqual(built.ps.store.weights, before, 'restored from the first checkpoint, which is the current state');

    const ck = await built.app.inject({ method: 'POST', url: '/api/admin/checkpoint', headers: auth });
    assert.equal(ck.statusCode, 200);
    assert.equal(ck.json().files.length, 3);
    const files = (await built.app.inject({ url: '/api/admin/checkpoints', headers: auth })).json();
    assert.deepEqual(files.shards.map((s: { files: unknown[] }) => s.files.length), [2, 2, 2]);
  });

  test('a shard that does not exist is ADMIN_NO_SHARD (404)', async () => {
    for (const k of ['3', '99', 'abc', '-1']) {
      const res = await built.app.inject({ method: 'POST', url: `/api/admin/shards/${k}/drop`, headers: auth });
      assert.equal(res.statusCode, 404, k);
      assert.equal(res.json().code, 'ADMIN_NO_SHARD');
    }
  });

  test('a strategy without shards answers ADMIN_UNSUPPORTED (409)', async () => {
    const other = await buildServer({ model: 'mnist-logreg', data, dataset: 'synthetic', evalEveryMs: 0, adminToken: TOKEN });
    try {
      const res = await other.app.inject({ method: 'POST', url: '/api/admin/shards/0/drop', headers: auth });
      assert.equal(res.statusCode, 409);
      assert.equal(res.json().code, 'ADMIN_UNSUPPORTED');
      assert.match(res.json().message, /Strategy none cannot drop a PS shard: start the PS with --strategy checkpoint/);
    } finally {
      await other.app.close();
    }
  });

  test('every console call without the token is refused with 401 and logged', async () => {
    const calls = [
      ['GET', '/api/admin/console'], ['GET', '/api/admin/series.json'], ['GET', '/api/admin/series.csv'], ['POST', '/api/admin/run'],
      ['POST', '/api/admin/nodes/ps/kill'], ['POST', '/api/admin/nodes/ps/restart'], ['POST', '/api/admin/nodes/ps/expire'],
      ['POST', '/api/admin/nodes/ps/shards/0/drop'], ['POST', '/api/admin/workers/1/disconnect'],
    ] as const;
    const before = logLines.filter((l) => l.includes('admin call refused')).length;
    for (const [method, url] of calls) {
      const res = await built.app.inject({ method, url, headers: { authorization: 'Bearer not-the-token' }, ...(method === 'POST' ? { payload: { lr: 1 } } : {}) });
      assert.equal(res.statusCode, 401, `${method} ${url}`);
      assert.equal(res.json().code, 'ADMIN_UNAUTHORIZED');
    }
    assert.equal(logLines.filter((l) => l.includes('admin call refused')).length - before, calls.length);
    assert.equal(built.ps.store.optimizer.lr, built.options.lr, 'nothing changed');
    // The page itself is public: it holds no data and asks for the token.
    const page = await built.app.inject({ url: '/admin' });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /tabswarm admin console/);
  });

  test('console: the single embedded PS, run changes, node controls refused, CSV and JSON', async () => {
    await built.app.ready();
    const state = await until(async () => {
      const s = (await built.app.inject({ url: '/api/admin/console', headers: auth })).json();
      return s.snapshot ? s : undefined;
    }, 'a first console sample', 10000);
    assert.equal(state.snapshot.mode, 'single');
    assert.deepEqual(state.snapshot.nodes.map((n: { name: string; role: string; health: string }) => [n.name, n.role, n.health]), [['ps', 'single', 'up']]);
    assert.equal(state.capabilities.killNode, false);
    assert.equal(state.capabilities.dropShard, true);
    assert.equal(state.run.strategy, 'checkpoint');

    const run = await built.app.inject({ method: 'POST', url: '/api/admin/run', headers: auth, payload: { lr: 0.02, rule: 'staleness' } });
    assert.equal(run.statusCode, 200, run.body);
    assert.equal(built.ps.store.optimizer.lr, 0.02);
    assert.equal(built.ps.store.rule, getRule('staleness'));
    assert.equal((await built.app.inject({ url: '/api/model' })).json().hyperparameters.rule, 'staleness');
    for (const payload of [{ lr: -1 }, { rule: 'median' }, { lr: 'fast' }, {}, { lr: 0.1, extra: 1 }]) {
      const bad = await built.app.inject({ method: 'POST', url: '/api/admin/run', headers: auth, payload });
      assert.equal(bad.statusCode, 400, JSON.stringify(payload));
    }
    assert.equal(built.ps.store.optimizer.lr, 0.02);

    for (const action of ['kill', 'restart', 'expire']) {
      const res = await built.app.inject({ method: 'POST', url: `/api/admin/nodes/ps/${action}`, headers: auth });
      assert.equal(res.statusCode, 409, action);
      assert.equal(res.json().code, 'ADMIN_NO_SUPERVISOR');
    }
    const drop = await built.app.inject({ method: 'POST', url: '/api/admin/nodes/ps/shards/2/drop', headers: auth });
    assert.equal(drop.statusCode, 200, drop.body);
    assert.equal((await built.app.inject({ method: 'POST', url: '/api/admin/nodes/other/shards/0/drop', headers: auth })).json().code, 'ADMIN_NO_NODE');
    assert.equal((await built.app.inject({ method: 'POST', url: '/api/admin/workers/77/disconnect', headers: auth })).json().code, 'ADMIN_NO_WORKER');

    const session = built.ps.join('test');
    const dis = await built.app.inject({ method: 'POST', url: `/api/admin/workers/${session.id}/disconnect`, headers: auth });
    assert.equal(dis.statusCode, 200);
    assert.equal(built.ps.sessions.get(session.id), undefined);

    const json = (await built.app.inject({ url: '/api/admin/series.json', headers: auth })).json();
    assert.deepEqual(json.events.map((e: { kind: string }) => e.kind), ['start', 'set-run', 'drop-shard', 'disconnect']);
    assert.ok(json.samples.length >= 1);
    const csv = (await built.app.inject({ url: '/api/admin/series.csv', headers: auth }));
    assert.match(csv.headers['content-type'] as string, /text\/csv/);
    assert.match(csv.body, /^t,at,version,updatesApplied,updatesPerSec,accuracy,loss,buffered,workers,examplesPerSec,nodesUp,events\n/);
  });

  test('the token comes from the option, else the environment, else is generated', () => {
    assert.deepEqual(resolveAdminToken('x'.repeat(16), {}), { token: 'x'.repeat(16), generated: false });
    assert.deepEqual(resolveAdminToken(undefined, { TABSWARM_ADMIN_TOKEN: 'from-env' }), { token: 'from-env', generated: false });
    const a = resolveAdminToken(undefined, {});
    const b = resolveAdminToken(undefined, {});
    assert.equal(a.generated, true);
    assert.ok(a.token.length >= 24 && a.token !== b.token);
  });
});
