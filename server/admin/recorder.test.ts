import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { analyseRun } from '../experiment/analysis.ts';
import type { RunRecord } from '../experiment/run.ts';
import { Recorder, samplesToCSV } from './recorder.ts';
import type { NodeView, Snapshot } from '../../shared/admin-api.ts';

/** A clock that moves 500 ms each time it is read: samples and events get distinct times. */
const ticking = () => {
  let t = 1_000_000;
  return () => (t += 500);
};
const node = (name: string, role: NodeView['role'], health: NodeView['health'], version: number | null, applied: number | null, epoch = 1): NodeView =>
  ({ name, url: `http://${name}/`, role, health, epoch, version, updatesApplied: applied, updatesPerSec: 0 });
const chain = (epoch: number, nodes: NodeView[]): Snapshot => ({
  mode: 'cluster', cluster: { name: 'c', epoch, replication: 'sync', reads: 'relaxed', head: nodes[0]?.url ?? null, tail: null }, nodes, workers: [], eval: { accuracy: 0.5, loss: 1, version: 1, node: 'a', t: 1 },
});

describe('Recorder', () => {
  test('a recorder started late backfills the run from the evaluation series, before its first sample', async () => {
    const clock = ticking();
    const rec = new Recorder({
      look: async () => chain(1, [node('a', 'head', 'up', 40, 40)]),
      clock,
      // Three evaluations made before anyone looked (the recorder started at 1_000_500).
      history: async () => [
        { at: 1_000_600, version: 5, updates: 5, accuracy: 0.3, loss: 2 },
        { at: 1_000_700, version: 20, updates: 20, accuracy: 0.6, loss: 1.2 },
        { at: 1_000_800, version: 35, updates: 35, accuracy: 0.8, loss: 0.7 },
        { at: 9_000_000, version: 99, updates: 99, accuracy: 0.9, loss: 0.1 }, // after the first sample: not backfilled
      ],
    });
    const live = await rec.sample();
    assert.deepEqual(rec.samples.map((s) => s.accuracy), [0.3, 0.6, 0.8, 0.5]);
    assert.deepEqual(rec.samples.slice(0, 3).map((s) => s.t), [0.1, 0.2, 0.3]);
    assert.ok(rec.samples[2]!.t < live!.t);
    assert.equal(rec.samples[1]!.updatesPerSec, 150, '15 updates in 0.1 s');
    assert.ok(Number.isNaN(rec.samples[0]!.buffered), 'what was not observed is not invented');
    await rec.sample();
    assert.equal(rec.samples.length, 5, 'the backfill runs once');
    assert.match(rec.toCSV().split('\n')[1]!, /^0\.1,1000600,5,5,0,0\.3,2,,,,1,/);
  });

  test('failures and recoveries are found from consecutive snapshots; applied updates count the head only, across restarts', async () => {
    const looks: Snapshot[] = [
      chain(1, [node('a', 'head', 'up', 10, 10), node('b', 'tail', 'up', 10, 10)]),
      chain(1, [node('a', 'head', 'up', 15, 15), node('b', 'tail', 'up', 15, 15)]),
      chain(1, [node('a', null, 'down', null, null), node('b', 'tail', 'up', 15, 15)]),
      chain(2, [node('a', null, 'down', null, null), node('b', 'head', 'up', 18, 18, 2)]),
      chain(3, [node('a', 'tail', 'up', 18, 0, 3), node('b', 'head', 'up', 20, 20, 3)]),
    ];
    let i = 0;
    const rec = new Recorder({ look: async () => looks[i++]!, clock: ticking() });
    for (let k = 0; k < looks.length; k++) await rec.sample();
    assert.deepEqual(rec.events.map((e) => e.kind), ['start', 'node-down', 'chain', 'epoch', 'chain', 'node-up', 'epoch', 'chain']);
    assert.deepEqual(rec.samples.map((s) => s.updatesApplied), [10, 15, 15, 18, 20]);
    assert.deepEqual(rec.samples.map((s) => s.version), [10, 15, 15, 18, 20]);
    assert.deepEqual(rec.samples.map((s) => s.nodesUp), [2, 2, 1, 1, 2]);
    const csv = samplesToCSV(rec.samples, rec.events).split('\n');
    assert.equal(csv[0], 't,at,version,updatesApplied,updatesPerSec,accuracy,loss,buffered,workers,examplesPerSec,nodesUp,events');
    assert.match(csv[3]!, /node-down a: a stopped answering; chain: chain now b:tail$/);
  });

  test('a restarted single PS: no accuracy while down, and the rollback is the updates lost', async () => {
    const single = (health: NodeView['health'], version: number | null, applied: number | null): Snapshot =>
      ({ mode: 'single', cluster: null, nodes: [node('ps', health === 'up' ? 'single' : null, health, version, applied)], workers: [], eval: version === null ? null : { accuracy: version / 1000, loss: 1, version, node: 'ps', t: 0 } });
    const looks = [single('up', 100, 100), single('up', 250, 250), single('down', null, null), single('up', 200, 0), single('up', 230, 30)];
    let i = 0;
    const rec = new Recorder({ look: async () => looks[i++]!, clock: ticking() });
    for (let k = 0; k < looks.length; k++) {
      if (k === 2) rec.event('kill', 'ps SIGKILLed', 'ps');
      if (k === 3) rec.event('restart', 'ps restarting', 'ps');
      await rec.sample();
    }
    assert.deepEqual(rec.samples.map((s) => s.accuracy), [0.1, 0.25, null, 0.2, 0.23]);
    assert.deepEqual(rec.samples.map((s) => s.updatesApplied), [100, 250, 250, 250, 280]);
    const run = { strategy: 's', label: 's', repeat: 1, baseline: false, schedule: { kills: [1], downtime: 1, duration: 10 }, samples: rec.samples, events: rec.events } as unknown as RunRecord;
    const m = analyseRun(run, 0.2);
    assert.equal(m.kills[0]!.accBefore, 0.25);
    assert.equal(m.kills[0]!.resumedFrom, 200);
    assert.equal(m.kills[0]!.updatesLost, 50);
    assert.equal(m.kills[0]!.accAfter, 0.23);
    assert.equal(m.accFinal, 0.23);
  });
});
