/**
 * Worker training-speed benchmark: `npm run bench:worker [-- --seconds 10 --warmup 2 --rounds 2
 * --backends webgpu,webgl,wasm,cpu --models fashion-cnn,mnist-mlp --batch N --breakdown --overlap --profile
 * --local-steps H --codec C]`.
 *
 * What it measures: examples/s of one headless-Chromium tab per tfjs backend and model, two ways,
 * on the same backend and batch:
 *
 *   tabswarm  the real worker page (public/app.js, from `npm run build`) against the real PS
 *             (buildServer + listen, synthetic data, no evaluation): per step it samples a batch,
 *             computes the flat gradient, pushes it, pulls fresh weights and uploads them
 *             (pullEvery 1), so the figure includes the protocol round trip and weight upload.
 *             With `--local-steps H` the PS runs with H local steps (DiLoCo-style): the page takes
 *             H steps on its own copy per exchange, so one round trip serves H batches.
 *   model.fit tfjs's own training loop on the same network built with tf.layers (bench/fit-page.ts,
 *             bundled here in memory with esbuild and served to the page by Playwright routing on
 *             the PS's origin, so the wasm backend loads its binaries from the PS's /wasm/).
 *
 * Both sides skip `--warmup` steps (shader compilation, first uploads), then time whole steps for
 * `--seconds`, from one step boundary to another, with the clock inside the page. Each cell runs
 * in a fresh browser context, `--rounds` times with the order of the sides alternating (the
 * machine is shared and noisy); the table gives each side's best round. `--breakdown` adds two columns that
 * split the worker's cost without the network: Trainer.step alone (forward, backward, gradient
 * read-back), and Trainer.setWeights + Trainer.step (plus the weight upload that follows a pull).
 * The browser and the PS are closed on exit, error or Ctrl-C.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, BrowserContext } from 'playwright';
import { buildServer } from '../server/app.ts';
import { CHROMIUM_PATH, launchChromium } from '../server/browsers.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { CODEC_NAMES } from '../shared/codec/index.ts';
import { getModel, hasConvolutions, type ModelSpec } from '../shared/models.ts';
import type { FitArgs, FitResult, StepArgs } from './fit-page.ts';
import { cpuMeter, machineLine, pct, printTable, treeCpuMs } from './sys.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'];

interface Timed {
  readonly examplesPerSec: number;
  readonly steps: number;
  readonly seconds: number;
  /** CPU of other processes during the cell, % of one core (set by cell()). */
  readonly others: number;
}
type Outcome = Timed | { readonly na: string };

const OPTIONS = defineOptions({
  seconds: { type: 'number', min: 0, exclusive: 'min', arg: 'S', default: 10, help: 'seconds per cell' },
  warmup: { type: 'int', min: 0, default: 2, help: 'warm-up steps per cell' },
  rounds: { type: 'int', min: 1, default: 2, help: 'rounds, the best kept' },
  backends: { type: 'list', of: 'string', arg: 'B,...', default: [...BACKENDS], help: 'backends to measure' },
  models: { type: 'list', of: 'string', arg: 'M,...', default: ['fashion-cnn', 'mnist-mlp'], help: 'models to measure' },
  batch: { type: 'int', min: 1, defaultText: "the model's", help: 'batch size' },
  breakdown: { type: 'flag', help: 'add the step and upload+step columns (twice as long)' },
  overlap: { type: 'flag', help: 'the worker page overlaps push and pull with the next step (?overlap=1; README, "Slow uplinks")' },
  localSteps: { type: 'int', min: 1, arg: 'H', default: 1, help: 'the PS runs with --local-steps H: one push and pull per H batches (every one counted as a step)' },
  codec: { type: 'choice', values: CODEC_NAMES, default: 'float32', help: 'push codec of the worker page (?codec=C; README, "Slow uplinks"); topk keeps 1%' },
  profile: { type: 'flag', help: 'profile the worker page (CDP) while the tabswarm side is timed, on an unminified bundle, and print the functions with the most self time' },
});

/** The worker page unminified (function names kept), for --profile: served in place of public/app.js. */
async function bundleWorkerPage(): Promise<string> {
  const out = await build({
    entryPoints: [join(ROOT, 'client', 'main.ts')],
    bundle: true, write: false, format: 'esm', platform: 'browser', target: 'es2022', minify: false, keepNames: true, logLevel: 'warning',
    outdir: join(ROOT, 'public'), // not written: the CSS beside it is public/app.css's already
    external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
  });
  return out.outputFiles.find((f) => f.path.endsWith('.js'))!.text;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }[];
  startTime: number;
  endTime: number;
}

/** The functions with the most self time in a CDP CPU profile, as lines. */
function topSelfTime(profile: CpuProfile, n: number): string[] {
  const total = profile.nodes.reduce((a, node) => a + (node.hitCount ?? 0), 0) || 1;
  const ms = (profile.endTime - profile.startTime) / 1000;
  const self = new Map<string, number>();
  for (const node of profile.nodes) {
    const f = node.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${f.url.split('/').pop()}:${f.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0));
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, hits]) => `${((100 * hits) / total).toFixed(1).padStart(5)}%  ${((ms * hits) / total).toFixed(0).padStart(6)} ms  ${k}`);
}

/** Bundles bench/fit-page.ts in memory (same settings as scripts/build.mjs). */
async function bundleFitPage(): Promise<string> {
  const out = await build({
    entryPoints: [join(ROOT, 'bench', 'fit-page.ts')],
    bundle: true, write: false, format: 'esm', platform: 'browser', target: 'es2022', minify: true, logLevel: 'warning',
    external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
  });
  return out.outputFiles[0]!.text;
}

/**
 * In-page timing of the real worker loop, as a string so that no compiler helper leaks into it.
 * Waits for `warmup` steps, then times whole steps for at least `seconds` from one step boundary
 * (a change of window.tabswarm.status.steps, polled every 5 ms) to another.
 */
const LOOP_TIMER = `async ({ warmup, seconds, timeoutMs }) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const page = () => window.tabswarm || {};
  const steps = () => (page().status ? page().status.steps : 0);
  const check = () => {
    const s = page().status;
    const err = page().error || (s && s.state === 'failed' ? s.lastError : '');
    if (err) throw new Error(err);
  };
  const deadline = performance.now() + timeoutMs;
  while (steps() < warmup) {
    check();
    if (performance.now() > deadline) throw new Error('warm-up took too long (' + steps() + ' steps, state ' + (page().status || {}).state + ')');
    await sleep(5);
  }
  let s0 = steps();
  while (steps() === s0) { check(); await sleep(5); }
  const t0 = performance.now();
  s0 = steps();
  while (performance.now() - t0 < seconds * 1000) { check(); await sleep(5); }
  const s1 = steps();
  while (steps() === s1) { check(); await sleep(5); }
  const t1 = performance.now();
  return { steps: steps() - s0, seconds: (t1 - t0) / 1000, backend: page().backend };
}`;

async function timeLoop(context: BrowserContext, base: string, backend: string, batch: number, warmup: number, seconds: number, query: string, unminified?: string): Promise<Timed> {
  const page = await context.newPage();
  if (unminified) await page.route(`${base}/app.js`, (route) => route.fulfill({ contentType: 'text/javascript', body: unminified }));
  await page.goto(`${base}/?backend=${backend}${query}`);
  const cdp = unminified ? await context.newCDPSession(page) : undefined;
  if (cdp) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
  }
  const r = (await page.evaluate(`(${LOOP_TIMER})(${JSON.stringify({ warmup, seconds, timeoutMs: 300_000 })})`)) as { steps: number; seconds: number; backend: string };
  if (cdp) {
    const { profile } = (await cdp.send('Profiler.stop')) as unknown as { profile: CpuProfile };
    console.log(`  the page's self time on ${backend} (warm-up included), top 15:\n${topSelfTime(profile, 15).map((l) => `    ${l}`).join('\n')}`);
  }
  if (r.backend !== backend) throw new Error(`the page trained on ${r.backend}, not ${backend}`);
  return { steps: r.steps, seconds: r.seconds, examplesPerSec: (r.steps * batch) / r.seconds, others: NaN };
}

/** Runs window[fn](args) of bench/fit-page.ts (benchFit or benchStep) on a page of the PS's origin. */
async function timePage(context: BrowserContext, base: string, bundle: string, fn: 'benchFit' | 'benchStep', args: FitArgs | StepArgs): Promise<Timed> {
  const page = await context.newPage();
  await page.route(`${base}/bench-fit.js`, (route) => route.fulfill({ contentType: 'text/javascript', body: bundle }));
  await page.route(`${base}/bench-fit.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><script type="module" src="/bench-fit.js"></script>' }));
  await page.goto(`${base}/bench-fit.html`);
  await page.waitForFunction(`typeof window.${fn} === "function"`);
  const r = (await page.evaluate(`window.${fn}(${JSON.stringify(args)})`)) as FitResult;
  if (r.backend !== args.backend) throw new Error(`${fn} ran on ${r.backend}, not ${args.backend}`);
  return { steps: r.batches, seconds: r.seconds, examplesPerSec: r.examplesPerSec, others: NaN };
}

/** Runs one cell in a fresh context; an error becomes the cell's text instead of ending the run. */
async function cell(browser: Browser, what: string, run: (c: BrowserContext) => Promise<Timed>): Promise<Outcome> {
  const context = await browser.newContext();
  // CPU of this process tree (PS, Playwright, Chromium) vs everything else, over the whole cell.
  const meter = cpuMeter({ ours: () => treeCpuMs(process.pid) });
  try {
    const t = await run(context);
    const cpu = meter();
    console.log(`  ${what}: ${t.examplesPerSec.toFixed(1)} examples/s (${t.steps} steps in ${t.seconds.toFixed(1)} s; CPU: ours ${pct(cpu.ours)}, others ${pct(cpu.others)})`);
    return { ...t, others: cpu.others };
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0]!.slice(0, 160);
    console.log(`  ${what}: FAILED ${msg}`);
    return { na: `error: ${msg}` };
  } finally {
    await context.close().catch(() => {});
  }
}

type Side = 'tabswarm' | 'step' | 'upload+step' | 'model.fit';

async function main(): Promise<void> {
  const opts = parseCommandLine(OPTIONS, 'npm run bench:worker -- [options]: worker training speed per backend vs model.fit (docs/benchmarks.md)');
  const { seconds, warmup, rounds, backends, breakdown, overlap, localSteps, codec, batch: batchArg } = opts;
  const query = `${overlap ? '&overlap=1' : ''}${codec === 'float32' ? '' : `&codec=${codec}`}`;
  const models = opts.models.map(getModel);
  if (!existsSync(join(ROOT, 'public', 'app.js'))) throw new Error('public/app.js is missing: run `npm run build` first');

  console.log(machineLine());
  const bundle = await bundleFitPage();
  const unminified = opts.profile ? await bundleWorkerPage() : undefined;
  browser = await launchChromium({ webgpu: true });
  console.log(`browser: ${CHROMIUM_PATH} ${browser.version()} (WebGPU on SwiftShader, i.e. on the CPU)`);
  console.log(`${seconds} s per cell after ${warmup} warm-up steps; best of ${rounds} rounds, the order of the sides alternating; worker page ${overlap ? 'with' : 'without'} --overlap, ${localSteps} local step(s) per exchange, pushes coded ${codec}\n`);

  const sides: Side[] = breakdown ? ['tabswarm', 'step', 'upload+step', 'model.fit'] : ['tabswarm', 'model.fit'];
  const head = ['model', 'backend', 'batch', 'tabswarm ex/s', 's/step', 'model.fit ex/s', 's/step', 'ratio', 'within 10%', 'others CPU'];
  const rows = [breakdown ? [...head, 'Trainer.step ex/s', 'setWeights+step ex/s'] : head];
  for (const spec of models) {
    const built = await buildServer({ model: spec.name, dataset: 'synthetic', evalEveryMs: 0, logger: false, batch: batchArg, localSteps });
    app = built.app;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const batch = built.options.batch;
    const args: FitArgs = { model: spec as ModelSpec, backend: '', batch, seconds, warmupBatches: warmup };
    for (const backend of backends) {
      if (backend === 'wasm' && hasConvolutions(spec)) {
        console.log(`  ${spec.name} on wasm: n/a (tfjs-wasm has no Conv2DBackpropFilter)`);
        rows.push([spec.name, backend, String(batch), 'n/a (no Conv2DBackpropFilter)', '', '', '', '', '', '', ...(breakdown ? ['', ''] : [])]);
        continue;
      }
      const run: Record<Side, (c: BrowserContext) => Promise<Timed>> = {
        tabswarm: (c) => timeLoop(c, base, backend, batch, warmup, seconds, query, unminified),
        step: (c) => timePage(c, base, bundle, 'benchStep', { ...args, backend, setWeights: false }),
        'upload+step': (c) => timePage(c, base, bundle, 'benchStep', { ...args, backend, setWeights: true }),
        'model.fit': (c) => timePage(c, base, bundle, 'benchFit', { ...args, backend }),
      };
      const results = new Map<Side, Outcome[]>(sides.map((side) => [side, []]));
      for (let round = 0; round < rounds; round++) {
        for (const side of round % 2 === 0 ? sides : [...sides].reverse()) {
          results.get(side)!.push(await cell(browser, `${spec.name} on ${backend}, ${side}, round ${round + 1}`, run[side]));
        }
      }
      // Each side's best round (the least disturbed by other processes); a failure wins over all.
      const best = (side: Side): Outcome => results.get(side)!.reduce((a, b) => ('na' in a ? a : 'na' in b ? b : b.examplesPerSec > a.examplesPerSec ? b : a));
      const ours = best('tabswarm');
      const fit = best('model.fit');
      const eps = (o: Outcome): string => ('na' in o ? o.na : o.examplesPerSec.toFixed(1));
      const sps = (o: Outcome): string => ('na' in o ? '' : (batch / o.examplesPerSec).toFixed(3));
      const ratio = 'na' in ours || 'na' in fit ? NaN : ours.examplesPerSec / fit.examplesPerSec;
      const others = Math.max(...[ours, fit].map((o) => ('na' in o ? 0 : o.others)));
      rows.push([spec.name, backend, String(batch), eps(ours), sps(ours), eps(fit), sps(fit), Number.isNaN(ratio) ? '' : ratio.toFixed(2),
        Number.isNaN(ratio) ? '' : ratio >= 0.9 ? 'yes' : 'NO', pct(others), ...(breakdown ? [eps(best('step')), eps(best('upload+step'))] : [])]);
    }
    await app.close();
    app = undefined;
  }
  console.log('');
  printTable(rows, 2);
}

let browser: Browser | undefined;
let app: Awaited<ReturnType<typeof buildServer>>['app'] | undefined;
async function cleanup(): Promise<void> {
  await browser?.close().catch(() => {});
  await app?.close().catch(() => {});
  browser = app = undefined;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void cleanup().finally(() => process.exit(130)));
try {
  await main();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await cleanup();
}
