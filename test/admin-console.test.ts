/**
 * The admin console in real Chromium against a real supervised PS (`tabswarm cluster`) with a
 * real worker tab: log in (a wrong token is refused), see the worker appear, click 'kill' on
 * the node and see the failure marker and the node leave the chain, restart it, change the
 * learning rate, download the CSV.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { Swarm } from '../server/swarm/swarm.ts';
import { spawnCli, until, type Proc } from './helpers.ts';

const TOKEN = 'console-test-token-0123456789';

async function startCluster(args: string[]): Promise<{ proc: Proc; consoleUrl: string; nodes: string[] }> {
  const proc = spawnCli(['cluster', '--port', '0', '--admin-token', TOKEN, ...args]);
  const ready = await until(() => {
    if (proc.child.exitCode !== null) throw new Error(`cluster exited: ${proc.output()}`);
    return /console at (http:\/\/\S+)\/admin; .*; nodes (.+)/.exec(proc.output());
  }, 'the cluster to be ready', 120000);
  return { proc, consoleUrl: `${ready[1]}/admin`, nodes: ready[2]!.trim().split(' ') };
}

describe('admin console (Playwright, real Chromium)', () => {
  let cluster: Proc;
  let consoleUrl: string;
  let nodeUrl: string;
  let swarm: Swarm;
  let browser: Browser;
  let page: Page;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tabswarm-console-'));
    const started = await startCluster(['--log-dir', join(dir, 'logs'), '--model', 'mnist-logreg', '--dataset', 'mnist', '--strategy', 'checkpoint', '--checkpoint-dir', join(dir, 'ck'), '--eval-every', '1000']);
    cluster = started.proc;
    consoleUrl = started.consoleUrl;
    nodeUrl = started.nodes[0]!;
    swarm = new Swarm({ url: nodeUrl, workers: 1, backend: 'wasm' });
    await swarm.start();
    browser = await launchChromium();
    page = await (await browser.newContext({ acceptDownloads: true })).newPage();
  });

  after(async () => {
    await browser?.close();
    await swarm?.stop();
    await cluster?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  test('the console API refuses a call without the token, and logs it', async () => {
    const res = await fetch(new URL('/api/admin/console', consoleUrl));
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { code: string }).code, 'ADMIN_UNAUTHORIZED');
    const kill = await fetch(new URL('/api/admin/nodes/node-1/kill', consoleUrl), { method: 'POST', headers: { authorization: 'Bearer wrong' } });
    assert.equal(kill.status, 401);
    await until(() => cluster.output().includes('admin call refused'), 'the refusal in the log', 5000);
  });

  test('log in, see the worker, kill the node, see the marker and the chain change, restart', async () => {
    await page.goto(consoleUrl);
    await page.fill('#token', 'not-the-token');
    await page.click('#login-button');
    await page.waitForFunction(() => /401/.test(document.getElementById('error')!.textContent ?? ''));
    assert.equal(await page.isVisible('#console'), false);

    await page.fill('#token', TOKEN);
    await page.click('#login-button');
    await page.waitForSelector('#console:not([hidden])');
    await page.waitForSelector('#nodes tr[data-node="node-1"][data-role="single"][data-health="up"]');
    // The worker tab appears, connected, with its backend, and training.
    // The worker's own report (backend, examples/s) follows its join by up to 2 s.
    await page.waitForSelector('#workers tr[data-state="connected"][data-backend="wasm"]', { timeout: 90000 });
    assert.equal(await page.textContent('#workers tbody tr td:nth-child(3)'), 'wasm');
    await page.waitForFunction(() => Number(document.querySelector('#nodes tr[data-node="node-1"] td:nth-child(5)')?.textContent) > 0, undefined, { timeout: 60000 });
    // Charts are uPlot's, one per measure.
    assert.equal(await page.locator('#charts .uplot').count(), 4);

    const pidBefore = await nodePid();
    await page.click('#nodes tr[data-node="node-1"] button[data-action="kill"]');
    await page.waitForSelector('#events li[data-kind="kill"]');
    await page.waitForSelector('#events li[data-kind="node-down"]');
    await page.waitForSelector('#nodes tr[data-node="node-1"][data-health="down"][data-role=""]');
    assert.throws(() => process.kill(pidBefore, 0), 'the node process is gone (SIGKILLed)');
    // Workers report to the PS: with no node up the console has no worker to list.
    await page.waitForFunction(() => document.getElementById('worker-count')!.textContent === '0');

    await page.click('#nodes tr[data-node="node-1"] button[data-action="restart"]');
    await page.waitForSelector('#events li[data-kind="node-up"]', { timeout: 60000 });
    await page.waitForSelector('#nodes tr[data-node="node-1"][data-role="single"][data-health="up"]');
    assert.notEqual(await nodePid(), pidBefore);
    await page.waitForSelector('#workers tr[data-state="connected"]', { timeout: 60000 });
  });

  test('change the learning rate; download the time series as CSV', async () => {
    await page.fill('#lr', '0.25');
    await page.click('#apply-run');
    await until(async () => ((await (await fetch(new URL('/api/model', nodeUrl))).json()) as { hyperparameters: { lr: number } }).hyperparameters.lr === 0.25, 'the node to use lr 0.25', 10000);
    await page.waitForSelector('#events li[data-kind="set-run"]');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-csv')]);
    const csv = await readFile((await download.path())!, 'utf8');
    const [header, ...rows] = csv.trim().split('\n');
    assert.match(header!, /^t,at,version,updatesApplied,/);
    assert.ok(rows.length >= 5, `rows: ${rows.length}`);
    assert.match(csv, /kill node-1: node-1 killed \(SIGKILL\)/);
    const down = rows.filter((r) => r.split(',')[10] === '0');
    assert.ok(down.length >= 1, 'samples with no node up, while it was killed');
  });

  async function nodePid(): Promise<number> {
    const res = await fetch(new URL('/api/admin/nodes', consoleUrl), { headers: { authorization: `Bearer ${TOKEN}` } });
    return ((await res.json()) as { nodes: { pid: number }[] }).nodes[0]!.pid;
  }
});

describe('admin console on a chain of three (Playwright, real ZooKeeper)', () => {
  let cluster: Proc;
  let consoleUrl: string;
  let browser: Browser;

  before(async () => {
    ({ proc: cluster, consoleUrl } = await startCluster(['--replication', 'sync', '--nodes', '3', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0']));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await cluster?.kill('SIGTERM');
  });

  test('kill the head from the page: failure marker, the next node becomes head, the killed node rejoins as tail', async () => {
    const page = await browser.newPage();
    await page.goto(consoleUrl);
    await page.fill('#token', TOKEN);
    await page.click('#login-button');
    // Three JVM-backed nodes starting on a loaded 2-core machine can take a while to form the chain.
    await page.waitForSelector('#nodes tr[data-node="node-1"][data-role="head"][data-health="up"]', { timeout: 90000 });
    await page.waitForSelector('#nodes tr[data-node="node-2"][data-role="middle"]', { timeout: 90000 });
    await page.waitForSelector('#nodes tr[data-node="node-3"][data-role="tail"]', { timeout: 90000 });
    assert.match(await page.textContent('#cluster-info') ?? '', /epoch \d+, sync replication/);

    await page.click('#nodes tr[data-node="node-1"] button[data-action="kill"]');
    await page.waitForSelector('#events li[data-kind="kill"]');
    await page.waitForSelector('#events li[data-kind="node-down"]');
    // ZooKeeper drops the dead head; node-2 leads a chain of two.
    await page.waitForSelector('#nodes tr[data-node="node-2"][data-role="head"]', { timeout: 30000 });
    await page.waitForSelector('#events li[data-kind="epoch"]');
    await page.waitForSelector('#nodes tr[data-node="node-1"][data-health="down"]');

    await page.click('#nodes tr[data-node="node-1"] button[data-action="restart"]');
    await page.waitForSelector('#nodes tr[data-node="node-1"][data-role="tail"][data-health="up"]', { timeout: 60000 });
    await page.waitForSelector('#events li[data-kind="node-up"]');
    await page.close();
  });
});
