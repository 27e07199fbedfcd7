/**
 * `npm run bench:stateless`: the reference failure schedule (Cao et al. 2024) against the
 * stateless PS, side by side with the same run without a failure.
 *
 *   fashion-cnn on Fashion-MNIST, batch 32, SGD lr 0.01; N headless Chromium worker tabs;
 *   the PS process is SIGKILLed at --kill-at s and a new one started --down s later.
 *
 * Prints: time from PS restart to the first flush applied; accuracy (full 10k test set) just
 * before the kill, just after recovery and at the end; gradients computed during the outage;
 * worker (tab) JS heap before, during and after. Options: --duration 100 --kill-at 30 --down 20
 * --workers 2 --backend webgl --rule mean --buffer-mode frozen --dataset fashion-mnist
 */
import type { Browser, CDPSession, Page } from 'playwright';
import type { WorkerStatus } from '../client/loop.ts';
import { launchChromium } from '../server/browsers.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { BACKENDS, PS_OPTIONS } from '../server/options/server.ts';
import { startPs, until, type FlushRecord, type PsProc, type Status } from '../test/helpers.ts';

const OPTIONS = defineOptions({
  duration: { type: 'number', min: 1, arg: 'S', default: 100, help: 'seconds of each run' },
  killAt: { type: 'number', min: 0, arg: 'S', default: 30, help: 'SIGKILL the PS at S seconds' },
  down: { type: 'number', min: 0, arg: 'S', default: 20, help: 'restart it S seconds later' },
  workers: { type: 'int', min: 1, default: 2, help: 'worker tabs' },
  backend: { type: 'choice', values: BACKENDS, default: 'webgl', help: 'the tabs\' backend' },
  rule: { ...PS_OPTIONS.rule, default: 'mean' },
  bufferMode: { ...PS_OPTIONS.bufferMode, default: 'frozen' },
  dataset: { ...PS_OPTIONS.dataset, default: 'fashion-mnist' },
  model: { ...PS_OPTIONS.model, default: 'fashion-cnn' },
});
const a = parseCommandLine(OPTIONS, 'npm run bench:stateless -- [options]: accuracy and heap through a stateless PS failure (docs/benchmarks.md)');
const duration = a.duration * 1000;
const killAt = a.killAt * 1000;
const down = a.down * 1000;
const SECRET = 'bench-stateless-secret-0123456789';

interface Point { t: number; version: number; accuracy: number }
interface Result {
  label: string;
  points: Point[];
  restartToFirstFlushMs?: number;
  accBeforeKill?: number;
  accAfterRecovery?: number;
  accEnd: number;
  outageGradients?: number;
  flushed?: number;
  heapMB: { before: number; during?: number; after: number };
  updates: number;
}

const psArgs = (port?: number) => ['--strategy', 'stateless', '--secret', SECRET, '--model', a.model, '--dataset', a.dataset, '--rule', a.rule,
  '--buffer-mode', a.bufferMode, '--eval-every', '2000', '--eval-examples', '10000', '--log-level', 'warn', ...(port ? ['--port', String(port)] : [])];

async function series(ps: PsProc, offsetMs: number, t0: number): Promise<Point[]> {
  const { points } = await ps.get<{ points: { t: number; version: number; accuracy: number }[] }>('/api/series');
  return points.map((p) => ({ t: p.t + (offsetMs - t0) / 1000, version: p.version, accuracy: p.accuracy }));
}

async function run(withFailure: boolean): Promise<Result> {
  let ps = await startPs(psArgs());
  const psStarted = Date.now();
  const port = Number(new URL(ps.url).port);
  const browser: Browser = await launchChromium({ webgpu: a.backend === 'webgpu' });
  const pages: Page[] = [];
  const cdps: CDPSession[] = [];
  try {
    for (let i = 0; i < a.workers; i++) {
      const page = await (await browser.newContext()).newPage();
      await page.goto(new URL(`/?backend=${a.backend}`, ps.url).toString());
      pages.push(page);
      cdps.push(await page.context().newCDPSession(page));
    }
    const status = async (p: Page) => (await p.evaluate(() => (window as unknown as { tabswarm: { status?: WorkerStatus } }).tabswarm.status))!;
    const heap = async () => {
      let total = 0;
      for (const c of cdps) {
        await c.send('HeapProfiler.collectGarbage');
        total += (await c.send('Runtime.getHeapUsage')).usedSize;
      }
      return total / 2 ** 20;
    };
    await until(async () => (await Promise.all(pages.map(status))).every((s) => s.steps > 0), 'all tabs to train', 180_000, 250);
    const t0 = Date.now();
    const heapBefore = await heap();
    const result: Partial<Result> = {};
    let collected: Point[] = [];
    let restartOffset = psStarted;
    if (withFailure) {
      await until(() => Date.now() - t0 >= killAt, 'the kill time', killAt + 5000, 100);
      collected = await series(ps, psStarted, t0);
      result.accBeforeKill = collected.at(-1)?.accuracy;
      const outageStart = (await Promise.all(pages.map(status))).reduce((n, s) => n + s.outageSteps, 0);
      await ps.kill('SIGKILL');
      const killedAt = Date.now();
      await until(() => Date.now() - killedAt >= down, 'the downtime', down + 5000, 100);
      const during = await heap();
      result.outageGradients = (await Promise.all(pages.map(status))).reduce((n, s) => n + s.outageSteps, 0) - outageStart;
      ps = await startPs(psArgs(port));
      const restartedAt = Date.now();
      const firstFlush = await until(async () => (await ps.get<{ flushes: (FlushRecord & { at: number })[] }>('/api/flushes')).flushes.find((f) => !f.duplicate), 'the first flush', 120_000, 50);
      result.restartToFirstFlushMs = firstFlush.at - restartedAt;
      const flushes = await until(async () => {
        const { flushes: fs } = await ps.get<{ flushes: FlushRecord[] }>('/api/flushes');
        return fs.filter((f) => !f.duplicate).length >= pages.length ? fs : undefined;
      }, 'every tab to flush', 120_000, 100);
      result.flushed = flushes.filter((f) => !f.duplicate).reduce((n, f) => n + f.count, 0);
      const lastFlushVersion = Math.max(...flushes.map((f) => f.version));
      const after = await until(async () => (await series(ps, restartedAt, t0)).find((p) => p.version >= lastFlushVersion), 'an evaluation after recovery', 60_000, 200);
      result.accAfterRecovery = after.accuracy;
      result.heapMB = { before: heapBefore, during, after: 0 };
      restartOffset = restartedAt;
    }
    await until(() => Date.now() - t0 >= duration, 'the end of the run', duration + 5000, 200);
    const final = await series(ps, restartOffset, t0);
    const points = [...collected, ...final].filter((p) => p.t >= 0);
    const st = await ps.get<Status>('/api/status');
    return {
      label: withFailure ? `kill at ${killAt / 1000} s, ${down / 1000} s down` : 'no failure',
      points,
      ...result,
      accEnd: points.at(-1)?.accuracy ?? NaN,
      heapMB: { ...(result.heapMB ?? { before: heapBefore }), after: await heap() },
      updates: st.version,
    };
  } finally {
    await browser.close();
    await ps.kill('SIGKILL');
  }
}

const f = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(d));
console.log(`bench:stateless ${a.model} on ${a.dataset}, ${a.workers} ${a.backend} tabs, rule ${a.rule}, buffer ${a.bufferMode}, ${duration / 1000} s`);
const noFailure = await run(false);
const failure = await run(true);
console.log('\n| run | restart -> first flush | acc before kill | acc after recovery | acc at end | outage gradients | flushed | heap MB before / during / after | updates |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of [noFailure, failure]) {
  console.log(`| ${r.label} | ${r.restartToFirstFlushMs === undefined ? '-' : `${r.restartToFirstFlushMs} ms`} | ${f(r.accBeforeKill)} | ${f(r.accAfterRecovery)} | ${f(r.accEnd)} | ${r.outageGradients ?? '-'} | ${r.flushed ?? '-'} | ${f(r.heapMB.before, 1)} / ${f(r.heapMB.during, 1)} / ${f(r.heapMB.after, 1)} | ${r.updates} |`);
}
const at = (r: Result, t: number) => r.points.filter((p) => p.t <= t).at(-1)?.accuracy;
console.log(`\nno-failure run at the same times: ${f(at(noFailure, killAt / 1000))} at ${killAt / 1000} s, ${f(at(noFailure, (killAt + down) / 1000 + 10))} at ${(killAt + down) / 1000 + 10} s`);
console.log('\naccuracy over time (t s: acc):');
for (const r of [noFailure, failure]) console.log(`  ${r.label}: ${r.points.map((p) => `${p.t.toFixed(0)}:${p.accuracy.toFixed(3)}`).join(' ')}`);
