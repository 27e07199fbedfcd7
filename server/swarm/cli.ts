/**
 * `tabswarm swarm --url URL --workers N [--browsers M] [--backend B] [--duration S] [--churn R] [--json]`
 *
 * Runs the swarm with a live status line (or, with --json, one JSON line per second that the
 * experiment harness parses), and prints a closing summary: per tab slot the worker, backend,
 * mean examples/s while connected, gradients computed and PS failures seen.
 */
import { parseArgs } from 'node:util';
import { TabswarmError } from '../../shared/errors.ts';
import { chromiumAvailable } from '../browsers.ts';
import { Swarm } from './swarm.ts';

const num = (option: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new TabswarmError('CONFIG_INVALID', { option, detail: `must be a number >= ${min}, got '${v}'` });
  return n;
};

export async function swarmCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      url: { type: 'string' }, workers: { type: 'string', default: '2' }, browsers: { type: 'string', default: '1' },
      backend: { type: 'string', default: 'auto' }, duration: { type: 'string' }, churn: { type: 'string', default: '0' },
      seed: { type: 'string', default: '1' }, json: { type: 'boolean', default: false },
    },
  });
  if (!values.url) throw new TabswarmError('CONFIG_INVALID', { option: '--url', detail: 'is required, e.g. --url http://127.0.0.1:8080/' });
  if (!['auto', 'webgpu', 'webgl', 'wasm', 'cpu'].includes(values.backend!)) throw new TabswarmError('CONFIG_INVALID', { option: '--backend', detail: `must be auto, webgpu, webgl, wasm or cpu, got '${values.backend}'` });
  if (!chromiumAvailable()) throw new TabswarmError('CONFIG_INVALID', { option: '--workers', detail: 'no Chromium at /usr/bin/chromium (install Debian\'s chromium: scripts/install-system-deps.sh, or set TABSWARM_CHROMIUM)' });
  const workers = num('--workers', values.workers, 1)!;
  const duration = num('--duration', values.duration, 1);
  const swarm = new Swarm({
    url: values.url, workers: Math.floor(workers), browsers: Math.floor(num('--browsers', values.browsers, 1)!), backend: values.backend!,
    churnPerMinute: num('--churn', values.churn, 0)!, seed: num('--seed', values.seed, 0)!,
  });
  const json = values.json!;
  const tty = process.stdout.isTTY && !json;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  process.once('SIGINT', () => done());
  process.once('SIGTERM', () => done());
  try {
    await swarm.start();
    const ticker = setInterval(() => {
      if (json) console.log(JSON.stringify({ t: (Date.now() - swarm.startedAt) / 1000, gradients: swarm.gradientsComputed(), buffered: swarm.buffered(), states: swarm.counts(), tabs: swarm.summary() }));
      else if (tty) process.stdout.write(`\r\x1b[2K${swarm.line()}`);
      else console.log(swarm.line());
    }, 1000);
    const timer = duration !== undefined ? setTimeout(() => done(), duration * 1000) : undefined;
    await finished;
    clearInterval(ticker);
    clearTimeout(timer);
    await swarm.poll();
  } finally {
    await swarm.stop();
  }
  if (tty) process.stdout.write('\n');
  const rows = swarm.summary();
  if (json) {
    console.log(JSON.stringify({ summary: rows, gradients: swarm.gradientsComputed() }));
  } else {
    console.log('\n| tab | browser | worker | backend | examples/s | gradients | failures seen | churned | last state |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.slot} | ${r.browser} | ${r.workerId ?? '-'} | ${r.backend ?? '-'} | ${r.examplesPerSec.toFixed(1)} | ${r.steps} | ${r.failuresSeen} | ${r.churned} | ${r.state} |`);
    console.log(`total: ${swarm.gradientsComputed()} gradients computed by ${rows.length} tab slot(s)`);
  }
  process.exit(0);
}
