import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { SeriesResponse } from '../../shared/api.ts';
import { until } from '../../test/helpers.ts';
import { buildServer, type Built } from '../app.ts';
import { loadDataset } from '../data.ts';

let built: Built | undefined;
after(async () => built?.app.close());

test('GET /api/series: from the first evaluation, with its time origin; ?since=T answers only newer points; a bad T is refused', async () => {
  const before = Date.now();
  built = await buildServer({ model: 'mnist-logreg', data: loadDataset('synthetic'), dataset: 'synthetic', evalEveryMs: 100, evalExamples: 200, meshPeers: 0 });
  await built.app.ready(); // the first evaluation runs on ready
  const get = async (url: string) => (await built!.app.inject({ url })).json() as SeriesResponse;
  const all = await until(async () => {
    const s = await get('/api/series');
    return s.points.length ? s : undefined;
  }, 'the first evaluation', 30_000);
  assert.equal(all.points[0]!.version, 0, 'the run is evaluated before any update');
  assert.ok(all.startedAt! >= before && all.startedAt! <= Date.now(), 'startedAt is t = 0 in wall time');
  const t = all.points.at(-1)!.t;
  assert.deepEqual((await get(`/api/series?since=${t}`)).points, []);
  // At most 6 decimals (the query's schema): t - 0.001 in binary floating point often has 16.
  assert.deepEqual((await get(`/api/series?since=${(t - 0.001).toFixed(6)}`)).points.at(-1), all.points.at(-1));
  assert.equal((await get('/api/series?since=-1')).points.length, all.points.length);
  const bad = await built.app.inject({ url: '/api/series?since=1e999' });
  assert.equal(bad.statusCode, 400);
});
