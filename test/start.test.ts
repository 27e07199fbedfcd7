/**
 * README, "Set up and run": `tabswarm start` (what `npm start` runs) prints the join URL and,
 * where Debian's Chromium is installed, launches headless worker tabs (`--workers`, default 2)
 * that train without anyone opening a browser; SIGTERM stops it cleanly, tabs included.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { joinUrl, spawnCli, until, type Proc, type Status } from './helpers.ts';

let proc: Proc | undefined;
after(async () => {
  await proc?.kill('SIGKILL');
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
