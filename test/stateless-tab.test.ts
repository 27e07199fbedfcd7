/**
 * The worker side of the stateless PS in real Chromium tabs and a real Node worker process:
 * a tab reloaded during an outage restores its persisted buffer and identity and flushes it to
 * the next PS; and worker memory stays flat over a long outage (the buffer is a running sum).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser, Page } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import type { WorkerStatus } from '../client/loop.ts';
import { spawnCli, startPs, until, workerLines, type FlushRecord, type Proc, type PsProc, type Status } from './helpers.ts';

const SECRET = 'tab-test-secret-0123456789abcdef';
const opened: Proc[] = [];
const browsers: Browser[] = [];
after(async () => {
  for (const b of browsers) await b.close();
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

async function ps(port?: number): Promise<PsProc> {
  const p = await startPs(['--strategy', 'stateless', '--secret', SECRET, '--model', 'mnist-mlp', '--dataset', 'synthetic', '--rule', 'staleness',
    '--eval-every', '0', '--adopt-window-ms', '2000', ...(port ? ['--port', String(port)] : [])]);
  opened.push(p);
  return p;
}

interface Persisted {
  /** Gradients in the saved buffer. */
  buffered: number;
  savedAt: number;
  /** Whether the tagged copy of the weights is saved too. */
  tagged: boolean;
}

/**
 * What the tab has saved for a reload, read from its IndexedDB (client/idb.ts's layout). Plain
 * JavaScript source: tsx would wrap named functions in a helper the page does not have.
 */
const READ_PERSISTED = `(async () => {
  const tab = sessionStorage.getItem('tabswarm-tab');
  if (!tab) return undefined;
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open('tabswarm');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  try {
    if (!db.objectStoreNames.contains('state')) return undefined;
    const get = (key) => new Promise((resolve, reject) => {
      const req = db.transaction('state', 'readonly').objectStore('state').get(key);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const state = await get('worker:' + tab);
    const tagged = await get('worker:' + tab + ':tagged');
    return { buffered: state?.buffer?.count ?? 0, savedAt: state?.savedAt ?? 0, tagged: tagged instanceof ArrayBuffer };
  } finally {
    db.close();
  }
})()`;
const persisted = (page: Page): Promise<Persisted | undefined> => page.evaluate(READ_PERSISTED) as Promise<Persisted | undefined>;

const status = async (page: Page) => (await page.evaluate(() => (window as unknown as { tabswarm: { status?: WorkerStatus } }).tabswarm.status))!;

test('a tab reloaded during an outage restores its buffer and flushes it to the next PS', { timeout: 240_000 }, async () => {
  const ps1 = await ps();
  const browser = await launchChromium();
  browsers.push(browser);
  const page = await (await browser.newContext()).newPage();
  await page.goto(new URL('/?backend=webgl', ps1.url).toString());
  const first = await until(async () => {
    const s = await status(page).catch(() => undefined);
    return s && s.state === 'connected' && s.steps > 20 ? s : undefined;
  }, 'the tab to train', 90_000, 200);
  // The service worker that lets the page load without the PS is in control.
  await until(() => page.evaluate(() => navigator.serviceWorker.controller !== null || navigator.serviceWorker.ready.then(() => true)), 'the service worker to be ready', 30_000);

  await ps1.kill('SIGKILL');
  // Reload once the tab has saved a buffer of this outage and its tagged copy of the weights
  // (read back from its IndexedDB), however late its persist timer fires on a loaded machine.
  let saved: Persisted | undefined;
  const beforeReload = await until(async () => {
    const s = await status(page);
    if (s.state !== 'buffering' || s.buffered < 10) return undefined;
    saved = await persisted(page);
    return saved && saved.buffered >= 10 && saved.savedAt >= s.bufferedSince && saved.tagged ? s : undefined;
  }, 'the tab to buffer through the outage and persist the buffer', 60_000, 200);
  await page.reload();
  const restored = await until(async () => {
    const s = await status(page).catch(() => undefined);
    return s?.restored && s.state === 'buffering' && s.steps > 0 ? s : undefined;
  }, 'the reloaded tab to restore its buffer and train on', 60_000, 200);
  assert.equal(restored.workerId, first.workerId, 'same identity after the reload');
  assert.ok(restored.restoredBuffered >= saved!.buffered, `the buffer restored (${restored.restoredBuffered}) is at least the one seen saved (${saved!.buffered})`);
  assert.ok(restored.restoredBuffered <= beforeReload.buffered + 100, 'nothing invented');
  assert.ok(restored.buffered > restored.restoredBuffered, 'and it keeps buffering on top of it');

  const ps2 = await ps(Number(new URL(ps1.url).port));
  const flushed = await until(async () => {
    const s = await status(page);
    return s.state === 'connected' && s.lastFlush ? s : undefined;
  }, 'the reloaded tab to flush', 60_000, 200);
  const f = flushed.lastFlush!;
  assert.equal(f.workerId, first.workerId);
  assert.ok(f.count >= restored.restoredBuffered, `flush of ${f.count} includes the ${restored.restoredBuffered} restored gradients`);
  const { flushes } = await ps2.get<{ flushes: FlushRecord[] }>('/api/flushes');
  assert.deepEqual(flushes.filter((a) => a.workerId === f.workerId && !a.duplicate).map((a) => [a.seq, a.count]), [[f.seq, f.count]]);
  const s2 = await ps2.get<Status>('/api/status');
  assert.equal(s2.strategy.fresh, false, 'the reloaded tab offered its persisted copy of the weights');
  assert.ok(s2.strategy.adopted!.version >= first.serverVersion);
});

test('worker memory stays flat over a long outage (Node worker and Chromium tab)', { timeout: 480_000 }, async () => {
  const ps1 = await ps();
  const browser = await launchChromium();
  browsers.push(browser);
  const page = await (await browser.newContext()).newPage();
  await page.goto(new URL('/?backend=webgl', ps1.url).toString());
  const cdp = await page.context().newCDPSession(page);
  const tabHeap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    return (await cdp.send('Runtime.getHeapUsage')).usedSize;
  };
  const node = spawnCli(['worker', '--url', ps1.url, '--log-every-ms', '1000'], {}, ['--expose-gc']);
  opened.push(node);
  const last = () => workerLines(node).filter((l) => 'worker' in l).at(-1)!;
  await until(async () => (await status(page)).steps > 20 && Number(last().steps) > 20, 'both workers to train', 90_000, 200);

  await ps1.kill('SIGKILL');
  // Warm up the outage path, then measure: 10x the ~5 s outage of the end-to-end test.
  await until(async () => (await status(page)).buffered >= 20 && Number(last().buffered) >= 20, 'both workers to buffer', 60_000, 200);
  // Live memory is the floor over a few seconds of samples (each taken after a full GC): a single
  // sample also holds whatever is in flight at that instant (a gradient being summed, a reconnect
  // attempt's buffers: up to a few MB here), a retained list of gradients raises the floor itself.
  const sample = async () => {
    const tab: number[] = [];
    const from = workerLines(node).length;
    const t = Date.now();
    while (Date.now() - t < 6000) {
      tab.push(await tabHeap());
      await new Promise((r) => setTimeout(r, 1000)); // sample spacing, not a wait for a condition
    }
    const lines = workerLines(node).slice(from).filter((l) => 'heapUsed' in l);
    assert.ok(lines.length >= 3, `the node worker logged ${lines.length} memory lines in 6 s`);
    const nodeFloor = Math.min(...lines.map((l) => Number(l.heapUsed) + Number(l.arrayBuffers)));
    console.log(`node memory samples (heap+arrayBuffers, MB): ${lines.map((l) => `${(Number(l.heapUsed) / 2 ** 20).toFixed(2)}+${(Number(l.arrayBuffers) / 2 ** 20).toFixed(2)}`).join(' ')}`);
    return { tab: Math.min(...tab), tabBuffered: (await status(page)).buffered, node: nodeFloor, nodeBuffered: Number(last().buffered) };
  };
  const t0 = Date.now();
  const start = await sample();
  // At least 50 s, and at least 100 more gradients in each worker's buffer: on a loaded machine
  // the Node worker computes fewer per second, so the count is waited for, not assumed.
  await until(async () => Date.now() - t0 >= 50_000 && (await status(page)).buffered - start.tabBuffered >= 100 && Number(last().buffered) - start.nodeBuffered >= 100, '50 s of outage and 100 more gradients in each buffer', 180_000, 1000);
  const end = await sample();
  const mb = (b: number) => (b / 2 ** 20).toFixed(2);
  console.log(`outage memory: tab ${mb(start.tab)} -> ${mb(end.tab)} MB over ${end.tabBuffered - start.tabBuffered} gradients; node ${mb(start.node)} -> ${mb(end.node)} MB over ${end.nodeBuffered - start.nodeBuffered} gradients`);
  const gradientBytes = 4 * 50_890; // mnist-mlp
  for (const [who, grew, n] of [['tab', end.tab - start.tab, end.tabBuffered - start.tabBuffered], ['node', end.node - start.node, end.nodeBuffered - start.nodeBuffered]] as const) {
    assert.ok(n >= 100, `${who} buffered ${n} more gradients`);
    // A list of gradients would have grown by n * 200 KB (20 MB or more); the running sum does not grow.
    assert.ok(grew < Math.min(4 * 2 ** 20, (n * gradientBytes) / 5), `${who} memory grew by ${mb(grew)} MB over ${n} buffered gradients`);
  }
});
