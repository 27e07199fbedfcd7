/**
 * bench:mesh: what the worker mesh buys, in headless Chromium tabs (cpu backend, mnist-logreg on
 * synthetic data: this 2-core machine cannot run the reference's fashion-cnn on 4-8 tabs).
 *
 * 1. Relay: PS egress (bytes of WEIGHTS frames) per applied update, relay off and on, at 4 and 8 workers, 20 s each.
 * 2. Gossip: the reference schedule shortened (kill at 20 s, 20 s down, 20 s after), 4 workers in
 *    `local` mode: spread of the workers' models at the end of the outage (mean pairwise L2),
 *    test accuracy just after recovery and at the end, gossip on and off.
 */
import type { Browser, Page } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { latestAccuracy, startPs, until } from '../test/helpers.ts';
import { spread, view, weightsOf } from '../test/mesh-tools.ts';

const SECRET = 'bench-mesh-secret-0123456789abcdef';
const base = ['--model', 'mnist-logreg', '--dataset', 'mnist', '--secret', SECRET, '--eval-examples', '2000'];
const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function tabs(url: string, n: number): Promise<{ browser: Browser; pages: Page[] }> {
  const browser = await launchChromium();
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(new URL('/?backend=cpu', url).toString());
    pages.push(page);
  }
  await until(async () => (await Promise.all(pages.map(view))).every((v) => v.status?.state === 'connected' && v.status.steps > 5), 'tabs training', 120_000, 250);
  return { browser, pages };
}

async function relay(workers: number, on: boolean) {
  const ps = await startPs([...base, '--eval-every', '0', '--relay', on ? 'on' : 'off', '--relay-max-lag', String(2 * workers)]);
  const { browser, pages } = await tabs(ps.url, workers);
  const m0 = await (await fetch(new URL('/metrics', ps.url))).text();
  await sleep(20_000);
  const m1 = await (await fetch(new URL('/metrics', ps.url))).text();
  const updates = metric(m1, 'tabswarm_updates_applied_total') - metric(m0, 'tabswarm_updates_applied_total');
  const bytes = metric(m1, 'tabswarm_weights_bytes_sent_total') - metric(m0, 'tabswarm_weights_bytes_sent_total');
  const views = await Promise.all(pages.map(view));
  const relayed = views.reduce((n, v) => n + (v.mesh?.relayReceived ?? 0), 0);
  await browser.close();
  await ps.kill('SIGKILL');
  return { workers, relay: on, updates, bytesPerUpdate: bytes / Math.max(1, updates), relayed };
}

async function gossip(gossipEveryMs: number) {
  const args = [...base, '--strategy', 'stateless', '--buffer-mode', 'local', '--eval-every', '2000', '--gossip-every-ms', String(gossipEveryMs)];
  const ps1 = await startPs(args);
  const port = new URL(ps1.url).port;
  const { browser, pages } = await tabs(ps1.url, 4);
  await sleep(20_000);
  const before = await latestAccuracy(ps1);
  await ps1.kill('SIGKILL');
  await sleep(20_000);
  const models = await Promise.all(pages.map(weightsOf));
  const rounds = (await Promise.all(pages.map(view))).reduce((n, v) => n + (v.mesh?.gossipStarted ?? 0), 0);
  const ps2 = await startPs([...args, '--port', port]);
  const recovered = await until(async () => {
    const p = await latestAccuracy(ps2).catch(() => undefined);
    return p && p.version > 0 ? p : undefined;
  }, 'the first evaluation after recovery', 60_000, 250);
  await sleep(20_000);
  const end = await latestAccuracy(ps2);
  await browser.close();
  await ps2.kill('SIGKILL');
  return { gossipEveryMs, spread: spread(models), rounds, accBefore: before?.accuracy, accRecovered: recovered.accuracy, accEnd: end?.accuracy };
}

const f = (x: number | undefined, d = 3) => (x === undefined ? '-' : x.toFixed(d));
const relays = [];
for (const workers of [4, 8]) for (const on of [false, true]) relays.push(await relay(workers, on));
console.log('\n| workers | relay | updates in 20 s | PS weights bytes / applied update | frames taken from peers |');
console.log('|---|---|---|---|---|');
for (const r of relays) console.log(`| ${r.workers} | ${r.relay ? 'on' : 'off'} | ${r.updates} | ${f(r.bytesPerUpdate, 0)} | ${r.relayed} |`);
const gossips = [await gossip(1000), await gossip(0)];
console.log('\n| gossip | spread at end of outage | gossip rounds | acc before kill | acc just after recovery | acc at end |');
console.log('|---|---|---|---|---|---|');
for (const g of gossips) console.log(`| ${g.gossipEveryMs ? `every ${g.gossipEveryMs} ms` : 'off'} | ${f(g.spread, 4)} | ${g.rounds} | ${f(g.accBefore)} | ${f(g.accRecovered)} | ${f(g.accEnd)} |`);
