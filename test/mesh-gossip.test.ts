/**
 * Gossip during an outage, in real Chromium tabs: three workers in `local` buffer mode form a
 * mesh through the PeerJS server beside the PS; the PS is SIGKILLed (and its signaling server
 * with it); the open data channels carry pairwise gossip rounds (counted during the outage, as
 * requests answered with weights), and the spread of the workers' models after the same number
 * of outage steps is under 0.8 of the spread in the same run with gossip off.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Browser } from 'playwright';
import { launchChromium } from '../server/browsers.ts';
import { startPs, until, type PsProc } from './helpers.ts';
import { openTabs, spread, view, weightsOf } from './mesh-tools.ts';

const SECRET = 'mesh-gossip-secret-0123456789abcd';
const OUTAGE_STEPS = 120;
/** Gossip must do better than this fraction of the no-gossip spread: a margin over run-to-run noise. */
const MARGIN = 0.8;
const opened: PsProc[] = [];
const browsers: Browser[] = [];
after(async () => {
  for (const b of browsers) await b.close();
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

async function outageSpread(gossipEveryMs: number): Promise<{ spread: number; answered: number; completed: number; signalingDown: boolean }> {
  const ps = await startPs(['--strategy', 'stateless', '--secret', SECRET, '--model', 'mnist-logreg', '--dataset', 'mnist', '--lr', '0.5',
    '--eval-every', '0', '--buffer-mode', 'local', '--mesh-peers', '2', '--gossip-every-ms', String(gossipEveryMs)]);
  opened.push(ps);
  const browser = await launchChromium();
  browsers.push(browser);
  const pages = await openTabs(browser, ps.url, 3);
  await until(async () => {
    const v = await Promise.all(pages.map(view));
    return v.every((t) => t.status?.state === 'connected' && t.status.steps > 10 && (t.mesh?.peers.length ?? 0) >= 2);
  }, 'three tabs training, each with two open data channels', 180_000, 250);

  const before = await Promise.all(pages.map(view));
  await ps.kill('SIGKILL');
  const start = await Promise.all(pages.map(async (p) => (await view(p)).status!.outageSteps));
  await until(async () => {
    const v = await Promise.all(pages.map(view));
    return v.every((t, i) => t.status!.state === 'buffering' && t.status!.outageSteps >= start[i]! + OUTAGE_STEPS);
  }, `${OUTAGE_STEPS} outage steps on every tab`, 150_000, 100);
  const models = await Promise.all(pages.map(weightsOf));
  const v = await Promise.all(pages.map(view));
  // Rounds of this outage only: a request answered with weights (counted by the answering tab),
  // and an exchange completed (counted by the asking tab once the reply's weights arrived).
  const answered = v.reduce((n, t, i) => n + t.mesh!.gossipAnswered - before[i]!.mesh!.gossipAnswered, 0);
  const completed = v.reduce((n, t, i) => n + t.mesh!.gossipStarted - before[i]!.mesh!.gossipStarted, 0);
  await browser.close();
  return { spread: spread(models), answered, completed, signalingDown: v.every((t) => !t.mesh!.signaling) };
}

test('gossip rounds during an outage keep the workers\' models closer than no gossip, by a margin', { timeout: 720_000 }, async () => {
  const withGossip = await outageSpread(300);
  const without = await outageSpread(0);
  console.log(`spread after ${OUTAGE_STEPS} outage steps: with gossip ${withGossip.spread.toFixed(4)} (${withGossip.answered} rounds answered, ${withGossip.completed} completed), without ${without.spread.toFixed(4)}; ratio ${(withGossip.spread / without.spread).toFixed(2)}`);
  assert.ok(withGossip.signalingDown, 'the signaling server died with the PS: gossip ran over channels opened before');
  assert.ok(withGossip.answered >= 3, `gossip requests answered with weights during the outage (${withGossip.answered})`);
  assert.ok(withGossip.completed >= 3, `gossip exchanges completed during the outage (${withGossip.completed})`);
  assert.equal(without.answered + without.completed, 0);
  assert.ok(withGossip.spread < MARGIN * without.spread, `spread with gossip ${withGossip.spread} < ${MARGIN} x without ${without.spread}`);
});
