/**
 * Workers behind a home uplink: `npm run bench:wire [-- options]`.
 *
 * One PS (`tabswarm start`, no tabs) and, per row, one Node worker (`tabswarm worker`), or with
 * `--tab B` one headless Chromium tab on backend B (the real worker page), that
 * reaches it only through a shaped link (bench/throttle.ts: --up-mbps up, --down-mbps down,
 * --rtt-ms round trip). Each row runs the same number of steps from the same initial weights
 * (same seeds) with one push codec and overlap setting, and reports:
 *   - upload bytes per example (what the worker sent through the link, all traffic);
 *   - examples/s of the worker, updates/s at the PS;
 *   - test accuracy after the fixed example budget (the final version, evaluated), and after a
 *     fixed wall-clock budget (--budget-s: the last evaluation within it);
 *   - each against the float32 row without overlap, measured in the same run.
 * Targets (issue 15): >= 4x fewer upload bytes per example at <= 1 point of accuracy loss, and
 * >= 3x examples/s on the 10 Mbit/s uplink for the best setting.
 */
import type { Browser } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { CODEC_NAMES } from '../shared/codec/index.ts';
import { spawnCli, startPs, until, workerLines, type SeriesPoint } from '../test/helpers.ts';
import { machineLine, printTable } from './sys.ts';
import { throttledLink } from './throttle.ts';

const OPTIONS = defineOptions({
  model: { type: 'string', default: 'fashion-cnn', help: 'model' },
  dataset: { type: 'string', default: 'fashion-mnist', help: 'data set' },
  steps: { type: 'int', min: 1, default: 60, help: 'steps per row (the fixed example budget is steps x batch)' },
  budgetS: { type: 'int', min: 1, default: 60, help: 'wall-clock budget for the second accuracy column, s' },
  upMbps: { type: 'number', min: 0, exclusive: 'min', default: 10, help: 'uplink, Mbit/s' },
  downMbps: { type: 'number', min: 0, exclusive: 'min', default: 50, help: 'downlink, Mbit/s' },
  rttMs: { type: 'int', min: 0, default: 20, help: 'round trip added, ms' },
  codecs: { type: 'list', of: 'string', values: CODEC_NAMES, default: [...CODEC_NAMES], help: 'codecs to run' },
  topkRatio: { type: 'number', min: 0, max: 0.5, exclusive: 'min', default: 0.01, help: 'topk: fraction kept' },
  overlap: { type: 'list', of: 'string', values: ['off', 'on'], default: ['off', 'on'], help: 'overlap settings to run' },
  localSteps: { type: 'list', of: 'int', min: 1, arg: 'H,...', default: [1], help: 'local steps per push to run (the PS\'s --local-steps; H > 1 uses its outer optimizer defaults)' },
  evalExamples: { type: 'int', min: 100, default: 2000, help: 'test images evaluated' },
  tab: { type: 'choice', values: ['webgpu', 'webgl', 'wasm', 'cpu'], help: 'a Chromium tab on this backend instead of a Node worker (the page, its data and its pushes all cross the link)' },
});

/** The worker's steps so far, and whether it is done (exited, or its loop stopped after --steps). */
interface Runner {
  steps(): Promise<number>;
  done(): Promise<boolean>;
  close(): Promise<void>;
}

function nodeWorker(url: string, o: ReturnType<typeof parse>, codec: string, overlap: boolean): Runner {
  const worker = spawnCli(['worker', '--url', url, '--seed', '1', '--steps', String(o.steps), '--log-every-ms', '1000', '--codec', codec, '--topk-ratio', String(o.topkRatio), ...(overlap ? ['--overlap'] : [])]);
  return {
    steps: async () => Math.max(0, ...workerLines(worker).map((l) => Number(l.steps) || 0)),
    done: async () => worker.child.exitCode !== null,
    close: () => worker.kill('SIGKILL'),
  };
}

/** The worker page in a fresh context (no cache from an earlier row), every byte through the link. */
async function tabWorker(browser: Browser, url: string, o: ReturnType<typeof parse>, codec: string, overlap: boolean): Promise<Runner> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const q = new URLSearchParams({ backend: o.tab!, steps: String(o.steps), codec, topk: String(o.topkRatio), mesh: 'off', ...(overlap ? { overlap: '1' } : {}) });
  await page.goto(new URL(`/?${q}`, url).toString());
  type Page = { status?: { steps: number; state: string }; error?: string; backend?: string };
  const status = () => page.evaluate(() => (window as unknown as { tabswarm: Page }).tabswarm);
  return {
    async steps() {
      const s = await status();
      if (s.error) throw new Error(`worker tab: ${s.error}`);
      if (s.backend && s.backend !== o.tab) throw new Error(`worker tab: asked for ${o.tab}, runs on ${s.backend}`);
      return s.status?.steps ?? 0;
    },
    done: async () => (await status()).status?.state === 'stopped',
    close: () => context.close(),
  };
}

interface Row {
  codec: string;
  overlap: string;
  localSteps: number;
  seconds: number;
  examples: number;
  upBytes: number;
  version: number;
  accuracy: number;
  accuracyAtBudget: number | undefined;
}

async function row(o: ReturnType<typeof parse>, browser: Browser | undefined, codec: string, overlap: boolean, localSteps: number): Promise<Row> {
  const ps = await startPs(['--model', o.model, '--dataset', o.dataset, '--seed', '3', '--eval-every', '2000', '--eval-examples', String(o.evalExamples), '--local-steps', String(localSteps)]);
  const link = await throttledLink(ps.url, { upBps: o.upMbps * 1e6, downBps: o.downMbps * 1e6, delayMs: o.rttMs / 2 });
  const worker = browser ? await tabWorker(browser, link.url, o, codec, overlap) : nodeWorker(link.url, o, codec, overlap);
  try {
    // The clock starts at the worker's first step, not at its start-up (data download, compile).
    const started = await until(async () => ((await worker.steps()) >= 1 ? Date.now() : undefined), 'the first step', 300_000, 100);
    // Series points carry the PS's clock (seconds since it started): the first step on that clock.
    const { uptimeSec } = await ps.get<{ uptimeSec: number }>('/api/status');
    const startedT = uptimeSec - (Date.now() - started) / 1000;
    await until(() => worker.done(), 'the worker to finish its steps', 3_600_000, 250);
    const seconds = (Date.now() - started) / 1000;
    const { model } = await ps.get<{ model: { defaults: { batch: number } } }>('/api/model');
    const { version } = await ps.get<{ version: number }>('/api/status');
    const final = await until(async () => {
      const { points } = await ps.get<{ points: SeriesPoint[] }>('/api/series');
      const p = points.at(-1);
      return p && p.version >= version ? { p, points } : undefined;
    }, 'an evaluation of the final version', 120_000, 250);
    const inBudget = final.points.filter((p) => p.t <= startedT + o.budgetS).at(-1);
    return { codec, overlap: overlap ? 'on' : 'off', localSteps, seconds, examples: o.steps * model.defaults.batch, upBytes: link.up(), version, accuracy: final.p.accuracy, accuracyAtBudget: inBudget?.accuracy };
  } finally {
    await worker.close();
    await link.close();
    await ps.kill('SIGKILL');
  }
}

function parse() {
  return parseCommandLine(OPTIONS, 'npm run bench:wire -- [options]: push codecs x overlap x local steps on a shaped uplink (docs/benchmarks.md)');
}

async function main(): Promise<void> {
  const o = parse();
  console.log(machineLine());
  const browser = o.tab ? await launchChromium({ webgpu: o.tab === 'webgpu' }) : undefined;
  console.log(`${o.model} on ${o.dataset}, one ${o.tab ? `Chromium tab (${o.tab}${o.tab.startsWith('web') ? ' on SwiftShader, the CPU' : ''})` : 'Node worker'}, ${o.steps} steps per row, link ${o.upMbps} Mbit/s up, ${o.downMbps} down, ${o.rttMs} ms RTT; accuracy on ${o.evalExamples} test images`);
  const rows: Row[] = [];
  for (const h of o.localSteps) {
    for (const codec of o.codecs) {
      for (const ov of o.overlap) {
        const r = await row(o, browser, codec, ov === 'on', h);
        rows.push(r);
        console.error(`H ${h} ${codec} overlap ${ov}: ${JSON.stringify(r)}`);
      }
    }
  }
  await browser?.close();
  const base = rows.find((r) => r.codec === 'float32' && r.overlap === 'off' && r.localSteps === 1) ?? rows[0]!;
  const perEx = (r: Row) => r.upBytes / r.examples;
  const exPerS = (r: Row) => r.examples / r.seconds;
  const pts = (v: number | undefined) => (v === undefined ? 'n/a' : (100 * v).toFixed(1));
  printTable([
    ['H', 'codec', 'overlap', 'up bytes/example', 'vs float32', 'examples/s', 'vs float32', 'updates/s', `acc after ${base.examples} ex`, 'vs float32 (pts)', `acc at ${o.budgetS} s`],
    ...rows.map((r) => [
      String(r.localSteps), r.codec, r.overlap, perEx(r).toFixed(0), `${(perEx(base) / perEx(r)).toFixed(2)}x fewer`, exPerS(r).toFixed(1), `${(exPerS(r) / exPerS(base)).toFixed(2)}x`,
      (r.version / r.seconds).toFixed(2), pts(r.accuracy), ((r.accuracy - base.accuracy) * 100).toFixed(1), pts(r.accuracyAtBudget),
    ]),
  ]);
}

await main();
