/**
 * The stateless PS end to end, with real processes and a real kill: a PS process, two headless
 * Chromium workers on WebGPU and one Node worker. The PS is SIGKILLed and kept down for several
 * seconds; the workers keep training and buffering; a new PS process on the same port adopts
 * the workers' weights (version no lower than the last acknowledged before the kill), every
 * buffered flush is applied exactly once (the Node worker's coded with topk), and accuracy
 * after recovery holds up.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser, Page } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { latestAccuracy, spawnCli, startPs, until, workerLines, type FlushRecord, type Proc, type Status } from './helpers.ts';

const SECRET = 'stateless-test-secret-0123456789';
const opened: Proc[] = [];
let browser: Browser | undefined;
after(async () => {
  await browser?.close();
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

interface TabStatus {
  state: string;
  workerId: number;
  steps: number;
  serverVersion: number;
  outageSteps: number;
  buffered: number;
}
type TabLedger = { flushes: { workerId: number; seq: number; count: number; duplicate: boolean; version: number }[] };
const tab = (page: Page) => page.evaluate(() => (window as unknown as { tabswarm: { status?: TabStatus; ledger?: TabLedger; backend?: string; error?: string } }).tabswarm);

function psArgs(port?: number): string[] {
  return ['--strategy', 'stateless', '--secret', SECRET, '--model', 'mnist-mlp', '--dataset', 'mnist', '--lr', '0.1', '--rule', 'staleness',
    '--eval-every', '1000', '--eval-examples', '5000', ...(port ? ['--port', String(port)] : [])];
}

test('SIGKILL the stateless PS: workers buffer through the outage, a new PS adopts their weights, flushes apply exactly once', { timeout: 400_000 }, async () => {
  const ps1 = await startPs(psArgs());
  opened.push(ps1);
  const port = Number(new URL(ps1.url).port);
  browser = await launchChromium({ webgpu: true });
  const pages: Page[] = [];
  for (let i = 0; i < 2; i++) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(new URL('/?backend=webgpu', ps1.url).toString());
    pages.push(page);
  }
  // The Node worker pushes with a lossy codec (topk, error feedback) and overlaps upload and
  // compute: exactly-once must hold for it too.
  const node = spawnCli(['worker', '--url', ps1.url, '--seed', '5', '--log-every-ms', '300', '--codec', 'topk', '--topk-ratio', '0.05', '--overlap'], {}, ['--expose-gc']);
  opened.push(node);

  // Training is under way on all three, and accuracy is clearly above chance.
  await until(async () => {
    const s = await ps1.get<Status>('/api/status');
    return s.workers.length === 3 && s.workers.every((w) => w.pushes > 5);
  }, 'three workers pushing', 120_000, 250);
  for (const p of pages) assert.equal((await tab(p)).backend, 'webgpu');
  await until(async () => {
    const p = await latestAccuracy(ps1);
    return p && p.accuracy >= 0.8 ? p : undefined;
  }, 'accuracy >= 0.80 before the kill', 200_000, 250);
  // Before the kill: the mean of the last three evaluations (one evaluation is noisy).
  const { points: beforePoints } = await ps1.get<{ points: { version: number; accuracy: number }[] }>('/api/series');
  const before = mean(beforePoints.slice(-3).map((p) => p.accuracy));

  await ps1.kill('SIGKILL');
  const killedAt = Date.now();
  const nodeAt = () => workerLines(node).filter((l) => 'worker' in l).at(-1)!;
  // Highest version any worker saw acknowledged: the PS is dead, so no later ack exists.
  const lastAcked = Math.max(...(await Promise.all(pages.map(async (p) => (await tab(p)).status!.serverVersion))), Number(nodeAt().version));
  const outageStart = await Promise.all(pages.map(async (p) => (await tab(p)).status!.outageSteps));
  const nodeOutageStart = Number(nodeAt().outageSteps);

  // Down for several seconds, and long enough that every worker has buffered gradients.
  await until(async () => {
    const tabs = await Promise.all(pages.map(tab));
    return Date.now() - killedAt >= 5000 && tabs.every((t, i) => t.status!.state === 'buffering' && t.status!.outageSteps >= outageStart[i]! + 5) && Number(nodeAt().outageSteps) >= nodeOutageStart + 5;
  }, 'every worker to keep computing gradients during the outage', 60_000, 200);

  const ps2 = await startPs(psArgs(port));
  opened.push(ps2);
  assert.equal(ps2.url, ps1.url, 'the new PS serves the same URL');
  const recovered = await until(async () => {
    const s = await ps2.get<Status>('/api/status');
    return s.strategy.phase === 'serving' ? s : undefined;
  }, 'the new PS to adopt a copy of the weights', 60_000, 200);
  assert.equal(recovered.strategy.fresh, false, 'it did not start fresh');
  assert.ok(recovered.strategy.adopted!.version >= lastAcked, `adopted version ${recovered.strategy.adopted!.version} >= last acknowledged ${lastAcked}`);
  assert.equal(recovered.strategy.offers!.rejected, 0);

  // Every worker flushed its buffer once, and the PS applied each flush exactly once.
  const flushedTabs = await Promise.all(pages.map((p, i) => until(async () => {
    const t = await tab(p);
    return t.ledger!.flushes.length > 0 && t.status!.state === 'connected' ? t.ledger! : undefined;
  }, `tab ${i} to flush`, 60_000, 200)));
  const nodeFlush = await until(() => workerLines(node).find((l) => (l.lastFlush as object | undefined) !== undefined && l.state === 'connected')?.lastFlush as FlushRecord | undefined, 'the Node worker to flush', 60_000, 200);
  assert.equal(nodeAt().codec, 'topk', 'the Node worker pushed and flushed with topk');
  const workerFlushes: FlushRecord[] = [...flushedTabs.flatMap((t) => t.flushes as FlushRecord[]), nodeFlush];
  const { flushes: applied } = await ps2.get<{ flushes: FlushRecord[] }>('/api/flushes');
  for (const f of workerFlushes) {
    const matches = applied.filter((a) => a.workerId === f.workerId && a.seq === f.seq && !a.duplicate);
    assert.equal(matches.length, 1, `flush ${f.workerId}/${f.seq} applied exactly once`);
    assert.equal(matches[0]!.count, f.count);
    assert.ok(f.count >= 5, `flush of ${f.count} buffered gradients`);
  }
  const keys = applied.filter((a) => !a.duplicate).map((a) => `${a.workerId}/${a.seq}`);
  assert.equal(new Set(keys).size, keys.length, 'no flush applied twice');

  // Accuracy after recovery (the median of the first nine evaluations once every flush is in, about
  // 9 s) is no lower than before the kill, within a small tolerance. Three flushes of many stale
  // gradients land within a second, and the evaluations among them can dip (seen: 0.651 between
  // 0.755 and 0.802; once 0.72 against 0.78 as the mean of three; once 0.641 0.463 0.654 and then
  // 0.813 0.811, which failed a median of five): the median judges the recovered model, not the
  // seconds in which the flushes land.
  const lastFlushVersion = Math.max(...workerFlushes.map((f) => f.version));
  const afterPoints = await until(async () => {
    const { points } = await ps2.get<{ points: { version: number; accuracy: number }[] }>('/api/series');
    const after = points.filter((p) => p.version >= lastFlushVersion);
    return after.length >= 9 ? after.slice(0, 9) : undefined;
  }, 'nine evaluations after the flushes', 60_000, 250);
  const afterRecovery = median(afterPoints.map((p) => p.accuracy));
  console.log(`accuracy before the kill ${beforePoints.slice(-3).map((p) => p.accuracy.toFixed(3)).join(' ')}; after the flushes ${afterPoints.map((p) => p.accuracy.toFixed(3)).join(' ')}`);
  assert.ok(afterRecovery >= before - 0.05, `accuracy after recovery ${afterRecovery.toFixed(4)} vs before the kill ${before.toFixed(4)}`);
});

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
