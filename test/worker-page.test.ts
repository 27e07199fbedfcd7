/**
 * The newcomer's view in real Chromium with WebGPU on (SwiftShader on a machine without a GPU):
 * - `auto` times the backends and keeps the fastest, so on a software adapter it does not keep
 *   webgpu for mnist-mlp; the page and /api/status say why, with the measured figures;
 * - the worker page shows the live accuracy chart and what the tab contributed, with no
 *   horizontal overflow on a phone-sized viewport (390 x 844);
 * - the admin console opened late shows the run from its first evaluation.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser, Page } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { startPs, until, type PsProc, type Status } from './helpers.ts';

const TOKEN = 'worker-page-test-token-0123456789';

let ps: PsProc | undefined;
let browser: Browser | undefined;
after(async () => {
  await browser?.close();
  await ps?.kill('SIGKILL');
});

interface PageState {
  backend?: string;
  backendReason?: string;
  error?: string;
  status?: { steps: number; examplesPerSec: number };
  accuracy?: () => readonly { t: number; accuracy: number }[];
}
const pageState = (page: Page) => page.evaluate(() => {
  const s = (window as unknown as { tabswarm: PageState }).tabswarm;
  return { backend: s.backend, backendReason: s.backendReason, error: s.error, status: s.status && { steps: s.status.steps, examplesPerSec: s.status.examplesPerSec }, points: s.accuracy?.().length ?? 0 };
});

test('auto measures the backends, the phone-sized page charts accuracy and contributions, the late console sees the whole run', { timeout: 150_000 }, async () => {
  ps = await startPs(['--model', 'mnist-mlp', '--dataset', 'mnist', '--eval-every', '1000', '--eval-examples', '2000', '--admin-token', TOKEN]);
  browser = await launchChromium({ webgpu: true });
  const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true })).newPage();
  phone.on('pageerror', (err) => console.error(`worker page error: ${err.message}`));
  await phone.goto(new URL('/?backend=auto', ps.url).toString());

  // The choice is made by measurement: webgpu initialised and was timed, and lost.
  const chosen = await until(async () => {
    const s = await pageState(phone);
    if (s.error) throw new Error(`worker page: ${s.error}`);
    return s.backend ? s : undefined;
  }, 'the auto page to pick a backend', 60_000, 250);
  assert.notEqual(chosen.backend, 'webgpu', 'WebGPU on SwiftShader is slower than the alternatives for mnist-mlp');
  assert.match(chosen.backendReason ?? '', /^auto: fastest measured, examples\/s /);
  assert.match(chosen.backendReason ?? '', /webgpu \d+ \(software adapter/, 'webgpu was timed and seen to be a software adapter');
  assert.match(chosen.backendReason ?? '', new RegExp(`${chosen.backend} \\d+`));
  assert.match(await phone.locator('#backend-reason').textContent() ?? '', /fastest measured/);
  assert.match(await phone.locator('#backend-notes').textContent() ?? '', /webgpu: slower \(\d+ examples\/s, software adapter/);

  // The tab trains; its contributions and the accuracy chart show.
  await until(async () => {
    const s = await pageState(phone);
    return s.status && s.status.steps >= 20 && s.points >= 3 ? s : undefined;
  }, 'the tab to train 20 steps and the chart to hold 3 evaluations', 90_000, 250);
  assert.ok(Number(await phone.locator('#c-steps').textContent()) >= 20, 'steps shown');
  assert.ok(Number(await phone.locator('#c-eps').textContent()) > 0, 'examples/s shown');
  assert.equal(await phone.locator('#c-buffered').textContent(), '0', 'nothing buffered while the PS is up');
  assert.equal(await phone.locator('#chart canvas').count(), 1, 'uPlot drew the chart');
  assert.match(await phone.locator('#accuracy').textContent() ?? '', /^\d+\.\d% at version \d+/);
  const overflow = await phone.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth, chart: document.querySelector('#chart canvas')!.getBoundingClientRect().right }));
  assert.ok(overflow.scroll <= overflow.inner, `no horizontal overflow at 390 px: scrollWidth ${overflow.scroll} > ${overflow.inner}`);
  assert.ok(overflow.chart <= overflow.inner, `the chart fits: right edge ${overflow.chart}`);

  // The PS reports the same backend and reason.
  const status = await ps.get<Status & { workers: { backend?: string; backendReason?: string }[] }>('/api/status');
  assert.equal(status.workers.length, 1);
  assert.equal(status.workers[0]!.backend, chosen.backend);
  assert.equal(status.workers[0]!.backendReason, chosen.backendReason);

  // The console, opened only now, shows the evaluations from before it was opened.
  const before = await ps.get<{ points: { t: number; accuracy: number; version: number }[] }>('/api/series');
  assert.ok(before.points.length >= 3);
  const admin = await (await browser.newContext()).newPage();
  await admin.goto(new URL('/admin', ps.url).toString());
  await admin.fill('#token', TOKEN);
  await admin.click('#login-button');
  const held = await until(async () => {
    const c = await admin.evaluate(() => (window as unknown as { tabswarmConsole: { samples: { t: number; version: number | null; accuracy: number | null }[] } }).tabswarmConsole.samples.map((s) => ({ t: s.t, version: s.version, accuracy: s.accuracy })));
    return c.length > before.points.length ? c : undefined;
  }, 'the console to hold the backfilled and live samples', 30_000, 250);
  const first = before.points[0]!;
  assert.ok(held.some((s) => s.version === first.version && s.accuracy === first.accuracy), `the console shows the first evaluation (version ${first.version})`);
  assert.ok(held[0]!.t <= first.t + 1, `the console's charts start with the run (t ${held[0]!.t}), not when it was opened`);
  assert.equal(await admin.locator('[data-chart="accuracy"] canvas').count(), 1);
});
