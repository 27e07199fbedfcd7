/**
 * The worker loop in Node against a real PS listening on a real socket: hundreds of steps
 * without a tensor leak, and reconnection with backoff when the socket drops.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { buildServer, type Built } from '../server/app.ts';
import { createNodeWorker } from './node.ts';
import { MemoryState } from './state.ts';

const servers: Built[] = [];
after(async () => {
  for (const s of servers) await s.app.close();
});

async function server(): Promise<{ built: Built; url: string }> {
  const built = await buildServer({ model: 'mnist-mlp', dataset: 'synthetic', evalEveryMs: 0, shards: 4 });
  servers.push(built);
  const url = await built.app.listen({ port: 0, host: '127.0.0.1' });
  return { built, url };
}

test('300 steps leave tf.memory().numTensors flat', { timeout: 120_000 }, async () => {
  const { built, url } = await server();
  const counts: number[] = [];
  const loop = await createNodeWorker({ url, maxSteps: 300, seed: 3, onStatus: (s) => s.state === 'connected' && s.steps > 0 && (counts[s.steps] = s.numTensors) });
  const final = await loop.run();
  assert.equal(final.steps, 300);
  assert.equal(built.ps.store.version, 300, 'every step was pushed and applied');
  assert.ok(counts[10]! > 0);
  assert.equal(counts[300], counts[10], `numTensors at step 10 (${counts[10]}) and 300 (${counts[300]})`);
  assert.equal(tf.memory().numTensors, 0, 'the trainer releases its weights when the loop ends');
});

test('a dropped socket: the worker buffers, reconnects with backoff, flushes once, and every gradient is applied', { timeout: 60_000 }, async () => {
  const { built, url } = await server();
  const states: string[] = [];
  let dropped = false;
  const loop = await createNodeWorker({
    url,
    maxSteps: 80,
    seed: 4,
    backoffMinMs: 200,
    onStatus: (s) => {
      if (states.at(-1) !== s.state) states.push(s.state);
      if (s.steps === 20 && !dropped) {
        dropped = true;
        // The server side drops this worker's socket (as a network failure would).
        for (const session of built.ps.sessions.all()) session.closeSocket?.(4000, 'test drop');
      }
    },
  });
  const final = await loop.run();
  assert.equal(final.steps, 80);
  const seen = states.join(' > ');
  assert.match(seen, /connected > connecting > buffering > flushing > connected/, seen);
  assert.equal(states.filter((s) => s === 'joining').length, 1, 'the session survived: no rejoin');
  assert.equal(loop.ledger.flushes.length, 1);
  const flush = loop.ledger.flushes[0]!;
  assert.ok(flush.count >= 1 && !flush.duplicate, `flush of ${flush.count}`);
  assert.equal(final.outageSteps, flush.count, 'every gradient computed while disconnected was flushed');
  // The PS applied each step once: steps outside the outage one by one, the outage as one flush.
  assert.equal(built.ps.store.version, final.steps - flush.count + 1);
  assert.deepEqual(built.ps.flushLog.map((f) => [f.workerId, f.seq, f.count, f.duplicate]), [[final.workerId, flush.seq, flush.count, false]]);
  const policy = loop.connection.policy;
  assert.ok(policy.delay(1) >= 100 && policy.delay(1) <= 300, 'first delay is min +- 50%');
  assert.ok(policy.delay(20) <= 6000, 'delays are capped');
});

test("'local' buffer mode steps the worker's own copy during the outage; 'frozen' does not", { timeout: 60_000 }, async () => {
  const outage = async (bufferMode: 'frozen' | 'local') => {
    const built = await buildServer({ model: 'mnist-mlp', dataset: 'synthetic', evalEveryMs: 0, shards: 4 });
    const url = await built.app.listen({ port: 0, host: '127.0.0.1' });
    const state = new MemoryState();
    const drift: number[] = [];
    let closing: Promise<void> | undefined;
    const loop = await createNodeWorker({
      url, maxSteps: 30, seed: 9, bufferMode, state,
      onStatus: (s) => {
        if (s.steps === 10 && !closing) closing = built.app.close(); // the PS goes away for good
        if (s.state === 'buffering') drift.push(s.localDrift);
      },
    });
    const final = await loop.run();
    await closing;
    return { final, drift, saved: (await state.load())! };
  };
  const frozen = await outage('frozen');
  const local = await outage('local');
  assert.equal(frozen.final.bufferMode, 'frozen');
  assert.equal(local.final.bufferMode, 'local');
  assert.ok(frozen.drift.length >= 15 && frozen.drift.every((d) => d === 0), 'frozen: the weights never move');
  assert.ok(local.drift.length >= 15);
  assert.ok(local.drift.at(-1)! > local.drift[0]! && local.drift[0]! > 0, `local: the own copy moves away step by step (${local.drift[0]} .. ${local.drift.at(-1)})`);
  // Either way the buffer is one model-sized running sum, persisted with its count.
  for (const r of [frozen, local]) {
    assert.equal(r.saved.buffer!.sum.length, 50_890);
    assert.equal(r.saved.buffer!.count, r.final.buffered);
  }
});

test('a worker never claims a base version its PS did not tell it (a step begun before a rollback)', { timeout: 60_000 }, async () => {
  // After a checkpoint PS restarts at an older version, a step the worker began on its
  // pre-rollback weights (version ~40) ends on the new connection: its true base is a version
  // this PS never reached. Claimed as such it was refused (PS_CLAIM_AHEAD, not retryable) and
  // both tabs of the reference experiment failed. Here the worker's weights are marked as from
  // such a version just as a step ends; the push must still be applied and training go on.
  const { built, url } = await server();
  let marked = false;
  const loop = await createNodeWorker({
    url, maxSteps: 30, seed: 6,
    onStatus: (s) => {
      if (s.steps === 10 && !marked) {
        marked = true;
        (loop as unknown as { replica: { version: number } }).replica.version = built.ps.store.version + 1000;
      }
    },
  });
  const final = await loop.run();
  assert.ok(marked);
  assert.equal(final.state, 'stopped', `the worker ${final.state}: ${final.lastError}`);
  assert.equal(final.steps, 30);
  assert.equal(built.ps.store.version, 30, 'every push applied once, none refused');
});
