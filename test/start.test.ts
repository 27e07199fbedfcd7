/**
 * README, "Set up and run": `tabswarm start` (what `npm start` runs) prints the join URL and,
 * where Debian's Chromium is installed, launches headless worker tabs (`--workers`, default 2)
 * that train without anyone opening a browser; SIGTERM stops it cleanly, tabs included. Without
 * a browser (forced here with TABSWARM_NO_BROWSER=1) it says so in one line and trains with
 * headless Node workers; a single PS answers the workers' /api/cluster probe without a log line.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { joinUrl, spawnCli, until, type Proc, type SeriesPoint, type Status } from './helpers.ts';

let proc: Proc | undefined;
let fallback: Proc | undefined;
after(async () => {
  await proc?.kill('SIGKILL');
  await fallback?.kill('SIGKILL');
});

test('without a browser, start says so in one line and trains with Node workers; /api/cluster leaves no log line', { timeout: 120_000 }, async () => {
  // The default log level (info), so a 404 or request line for /api/cluster would show.
  fallback = spawnCli(['start', '--port', '0', '--model', 'mnist-logreg', '--eval-every', '1000', '--eval-examples', '2000'], { TABSWARM_NO_BROWSER: '1' });
  const url = await joinUrl(fallback);
  await until(() => /launched 2 headless Node worker\(s\) \(tfjs cpu backend\), as TABSWARM_NO_BROWSER asks/.test(fallback!.output()), 'the one line about the Node workers', 30_000, 100);
  const series = async () => ((await (await fetch(new URL('/api/series', url))).json()) as { points: SeriesPoint[] }).points;
  // Training, shown the way a newcomer sees it: accuracy at the first evaluation, then higher,
  // past 0.5. One wait for both (a CI run saw the first rise of 0.2 land at 0.48).
  const first = await until(async () => (await series())[0], 'the first evaluation', 30_000, 250);
  const rising = await until(async () => (await series()).find((p) => p.version >= 20 && p.accuracy > Math.max(first.accuracy + 0.2, 0.5)), 'accuracy to rise by 0.2, past 0.5, with Node workers', 90_000, 500);
  const status = (await (await fetch(new URL('/api/status', url))).json()) as Status;
  assert.equal(status.workers.length, 2);
  assert.ok(status.workers.every((w) => w.backend === 'cpu' && w.pushes > 0), JSON.stringify(status.workers));
  assert.ok(rising.accuracy > 0.5, `accuracy ${rising.accuracy}`);
  // Both workers probed /api/cluster after joining (client/head-locator.ts); a single PS answers
  // 404, as the locator and the console's probe expect, and logs nothing for it.
  const cluster = await fetch(new URL('/api/cluster', url));
  assert.equal(cluster.status, 404);
  await until(() => /"url":"\/api\/status"/.test(fallback!.output()), 'the request log to show the /api/status read', 5_000, 50);
  assert.doesNotMatch(fallback.output(), /api\/cluster/, 'no log line about /api/cluster');
  assert.equal(fallback.output().split('\n').filter((l) => /headless (Node|Chromium) worker/.test(l)).length, 1, 'one line about the workers');
  fallback.child.kill('SIGTERM');
  await until(() => fallback!.child.exitCode !== null || fallback!.child.signalCode !== null, 'the PS to exit after SIGTERM', 30_000, 100);
  assert.equal(fallback.child.exitCode, 0, fallback.output().slice(-1000));
});

test('no Chromium where it is looked for: one line says so, and a Node worker trains instead', { timeout: 60_000 }, async () => {
  const missing = '/nonexistent/chromium';
  const proc1 = spawnCli(['start', '--port', '0', '--workers', '1', '--install-deps', 'off', '--model', 'mnist-logreg', '--eval-every', '0', '--log-level', 'warn'], { TABSWARM_CHROMIUM: missing });
  try {
    const url = await joinUrl(proc1);
    await until(() => proc1.output().includes(`tabswarm: no Chromium at ${missing} (--install-deps off: apt-get install -y chromium); launched 1 headless Node worker(s) (tfjs cpu backend) instead`), 'the fallback line', 30_000, 100);
    await until(async () => {
      const s = (await (await fetch(new URL('/api/status', url))).json()) as Status;
      return s.workers.length === 1 && s.workers[0]!.backend === 'cpu' && s.workers[0]!.pushes >= 5;
    }, 'the Node worker to push', 40_000, 250);
  } finally {
    await proc1.kill('SIGTERM');
  }
  assert.equal(proc1.child.exitCode, 0, proc1.output().slice(-1000));
});

test('tabswarm start launches its headless worker tabs, which train; SIGTERM stops it with exit 0', { timeout: 180_000 }, async () => {
  proc = spawnCli(['start', '--port', '0', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--worker-backend', 'wasm', '--log-level', 'warn']);
  const url = await joinUrl(proc);
  await until(() => /launched 2 headless Chromium worker tab\(s\) \(backend wasm\)/.test(proc!.output()), 'the two default tabs to be launched', 90_000, 250);
  const status = await until(async () => {
    const s = (await (await fetch(new URL('/api/status', url))).json()) as Status;
    // Each tab reports its backend every 2 s; both must have reported and pushed.
    return s.workers.length === 2 && s.workers.every((w) => w.backend === 'wasm' && w.pushes >= 5) ? s : undefined;
  }, 'two wasm tab workers training', 90_000, 500);
  assert.ok(status.version >= 10, `version ${status.version}`);
  proc.child.kill('SIGTERM');
  await until(() => proc!.child.exitCode !== null || proc!.child.signalCode !== null, 'the PS to exit after SIGTERM', 30_000, 100);
  assert.equal(proc.child.exitCode, 0, `exit after SIGTERM: ${proc.child.exitCode ?? proc.child.signalCode}; ${proc.output().slice(-1000)}`);
});
