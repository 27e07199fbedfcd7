/**
 * A hostile Chromium tab (the worker page with the test-only `?attack=scale:1e30`) beside an
 * honest Node worker: the tab's pushes are clipped, it is disconnected as a repeat offender
 * (PS_OFFENDER) and kept out, as /metrics and /api/status say, and the honest worker finishes
 * with a healthy model. The honest worker pushes through the whole attack (it is stopped with
 * SIGTERM, which drains): alone, the tab would make up the clipping median and be caught by the
 * output guard instead (offenders.test.ts covers that).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { latestAccuracy, spawnCli, startPs, until, type Proc, type PsProc, type SeriesPoint, type Status } from './helpers.ts';

const browsers: Browser[] = [];
const opened: Proc[] = [];
after(async () => {
  for (const b of browsers) await b.close();
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

async function metric(p: PsProc, re: RegExp): Promise<number> {
  const text = await (await fetch(new URL('/metrics', p.url))).text();
  return text.split('\n').filter((l) => re.test(l) && !l.startsWith('#')).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

test('a Chromium tab pushing ×1e30 is clipped, disconnected as an offender and kept out; the honest worker trains on', { timeout: 180_000 }, async () => {
  const p = await startPs(['--model', 'mnist-logreg', '--dataset', 'mnist', '--shards', '4', '--eval-every', '500', '--eval-examples', '2000', '--seed', '3', '--clip-window', '8', '--offender-strikes', '6', '--offender-window', '8']);
  opened.push(p);
  // The honest worker joins first: the keep-out covers the tab's address, loopback here, and
  // refuses joins, not sessions already in.
  const honest = spawnCli(['worker', '--url', p.url, '--seed', '1', '--steps', '1000000']);
  opened.push(honest);
  await until(async () => (await p.get<Status>('/api/status')).workers.length === 1 || undefined, 'the honest worker to join', 60_000, 200);
  const browser = await launchChromium();
  browsers.push(browser);
  const page = await (await browser.newContext()).newPage();
  await page.goto(new URL('/?backend=cpu&mesh=off&attack=scale:1e30', p.url).toString());
  // Judged once the clipping scale is past its warm-up (--clip-window pushes).
  await until(async () => (await metric(p, /^tabswarm_offenders_total\{/)) >= 1 || undefined, 'the tab to be disconnected as an offender', 90_000, 250);
  assert.ok((await metric(p, /^tabswarm_pushes_clipped_total/)) >= 1, 'its pushes were clipped');
  const { robustness, workers } = await p.get<Status & { robustness?: { keptOut: { workerId: number; reason: string }[] } }>('/api/status');
  assert.equal(robustness?.keptOut.length, 1);
  const tab = robustness.keptOut[0]!;
  // The push that tipped it was clipped, or (when its pushes happened to make up most of the
  // last --clip-window, so the radius followed them) its step refused by the output guard.
  assert.ok(tab.reason === 'clipped' || tab.reason === 'guard', tab.reason);
  assert.equal(honest.child.exitCode, null, 'the honest worker was still training through the attack');
  assert.ok(!workers.some((w) => w.id === tab.workerId), 'its session ended');
  const again = await fetch(new URL('/api/join', p.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(again.status, 429);
  assert.equal(((await again.json()) as { code: string }).code, 'PS_KEPT_OUT');

  honest.child.kill('SIGTERM');
  await until(() => honest.child.exitCode !== null || undefined, 'the honest worker to drain and exit', 60_000, 200);
  assert.equal(honest.child.exitCode, 0, honest.output().slice(-2000));
  const { version } = await p.get<Status>('/api/status');
  const point = await until(async () => {
    const pt = await latestAccuracy(p);
    return pt && pt.version >= version ? pt : undefined;
  }, `an evaluation of version ${version}`, 30_000, 200);
  assert.ok(point.loss < 5 && point.accuracy >= 0.6, `the model is healthy: ${JSON.stringify(point satisfies SeriesPoint)}`);
});
