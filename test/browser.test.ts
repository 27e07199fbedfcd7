/**
 * End to end in real Chromium: two headless tabs on the WebGPU backend (SwiftShader on a machine
 * without a GPU) join a real PS process by opening its URL, train, and test accuracy climbs
 * clearly above chance. The page reports backend 'webgpu'; tensors do not leak.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { latestAccuracy, startPs, until, type PsProc, type Status } from './helpers.ts';
import { loadDataset } from '../server/data.ts';
import { trainerSuite } from '../client/trainer-suite.ts';
import { openTrainerPage, type TrainerPage } from './trainer-page.ts';

let ps: PsProc | undefined;
let browser: Browser | undefined;
after(async () => {
  await browser?.close();
  await ps?.kill('SIGKILL');
});

interface PageStatus {
  backend?: string;
  error?: string;
  status?: { state: string; steps: number; numTensors: number; serverVersion: number; lastError: string };
}

const pageState = (page: Page) => page.evaluate(() => (window as unknown as { tabswarm: PageStatus }).tabswarm);

test('2 headless Chromium tabs on WebGPU train mnist-mlp well above chance', { timeout: 300_000 }, async () => {
  ps = await startPs(['--model', 'mnist-mlp', '--dataset', 'mnist', '--eval-every', '2000', '--eval-examples', '2000', '--lr', '0.1']);
  browser = await launchChromium({ webgpu: true });
  const pages: Page[] = [];
  for (let i = 0; i < 2; i++) {
    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error(`tab ${i} page error: ${err.message}`));
    await page.goto(new URL('/?backend=webgpu', ps.url).toString());
    pages.push(page);
  }
  for (const [i, page] of pages.entries()) {
    const s = await until(async () => {
      const st = await pageState(page);
      if (st.error) throw new Error(`tab ${i}: ${st.error}`);
      return st.status && st.status.steps >= 5 ? st : undefined;
    }, `tab ${i} to train 5 steps`, 120_000, 250);
    assert.equal(s.backend, 'webgpu', `tab ${i} runs on WebGPU`);
    assert.equal(await page.locator('#backend').textContent(), 'webgpu', `tab ${i} shows its backend`);
  }
  const reached = await until(async () => {
    const p = await latestAccuracy(ps!);
    return p && p.accuracy >= 0.6 ? p : undefined;
  }, 'test accuracy >= 0.60 (chance is 0.10)', 200_000, 500);
  assert.ok(reached.accuracy >= 0.6);

  const status = await ps.get<Status>('/api/status');
  assert.equal(status.workers.length, 2);
  for (const w of status.workers) {
    assert.ok(w.pushes > 0, `worker ${w.id} pushed`);
    assert.equal(w.backend, 'webgpu');
  }
  // No tensor leak in the tabs: the count after many steps equals the count early on.
  const early = await Promise.all(pages.map(async (p) => (await pageState(p)).status!));
  const later = await Promise.all(pages.map((p, i) => until(async () => {
    const s = (await pageState(p)).status!;
    return s.steps >= early[i]!.steps + 20 ? s : undefined;
  }, `tab ${i} to train 20 more steps`, 120_000, 250)));
  for (const [i, s] of later.entries()) assert.equal(s.numTensors, early[i]!.numTensors, `tab ${i} tensors stay flat`);
});

test('the page says which backend runs and why: auto falls back without WebGPU, wasm refuses the CNN', { timeout: 120_000 }, async () => {
  const cnn = await startPs(['--model', 'fashion-cnn', '--dataset', 'synthetic', '--eval-every', '0']);
  const plain = await launchChromium({ webgpu: false });
  try {
    const auto = await plain.newPage();
    await auto.goto(new URL('/?backend=auto', cnn.url).toString());
    const s = await until(async () => {
      const st = await pageState(auto);
      return st.backend ? st : undefined;
    }, 'the auto page to pick a backend', 60_000, 250);
    assert.notEqual(s.backend, 'webgpu', 'no WebGPU without the flags');
    assert.match(await auto.locator('#backend-notes').textContent() ?? '', /webgpu: navigator\.gpu/);

    const wasm = await plain.newPage();
    await wasm.goto(new URL('/?backend=wasm', cnn.url).toString());
    const err = await until(async () => (await pageState(wasm)).error, 'the wasm page to report an error', 60_000, 250);
    assert.match(err, /WORKER_BACKEND_UNSUPPORTED/);
    assert.match(err, /Conv2DBackpropFilter/);
    assert.match(await wasm.locator('#error').textContent() ?? '', /Conv2DBackpropFilter/);
  } finally {
    await plain.close();
    await cnn.kill('SIGKILL');
  }
});

// The Trainer suite (client/trainer-suite.ts) on the browser's backends, one test per case, as
// client/trainer.test.ts runs it on cpu and wasm in Node (tfjs's describeWithFlags, per backend).
describe('the Trainer suite in Chromium', () => {
  let suiteBrowser: Browser | undefined;
  let suite: TrainerPage | undefined;
  before(async () => {
    const { train } = loadDataset('mnist');
    suiteBrowser = await launchChromium({ webgpu: true });
    suite = await openTrainerPage(suiteBrowser, { pixels: train.pixels.slice(0, 64 * 784), labels: train.labels.slice(0, 64) });
  });
  after(async () => {
    await suite?.close();
    await suiteBrowser?.close();
  });
  for (const backend of ['webgl', 'webgpu']) {
    for (const c of trainerSuite(backend)) {
      test(`${backend}: ${c.name}`, { timeout: 120_000 }, async (t) => {
        assert.ok(suite, 'the suite page opened');
        t.diagnostic(await suite.run(backend, c.name));
      });
    }
  }
});
