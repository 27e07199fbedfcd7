/**
 * `tabswarm swarm --url URL --workers N [--browsers M] [--backend B] [--duration S] [--churn R] [--json]`
 *
 * Runs the swarm with a live status line (or, with --json, one JSON line per second that the
 * experiment harness parses), and prints a closing summary: per tab slot the worker, backend,
 * mean examples/s while computing (connected or buffering), gradients computed and PS failures seen.
 */
import { TabswarmError } from '../../shared/errors.ts';
import { chromiumAvailable } from '../browsers.ts';
import { parseOptions } from '../options/schema.ts';
import { SWARM_OPTIONS } from '../options/tools.ts';
import { Swarm } from './swarm.ts';

export async function swarmCommand(argv: string[]): Promise<void> {
  const values = parseOptions(SWARM_OPTIONS, argv);
  if (!chromiumAvailable()) throw new TabswarmError('CONFIG_INVALID', { option: '--workers', detail: 'no Chromium at /usr/bin/chromium (install Debian\'s chromium: scripts/install-system-deps.sh, or set TABSWARM_CHROMIUM)' });
  const duration = values.duration;
  const swarm = new Swarm({
    url: values.url, workers: values.workers, browsers: values.browsers, backend: values.backend,
    churnPerMinute: values.churn, seed: values.seed,
  });
  const json = values.json;
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
