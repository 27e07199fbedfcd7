/**
 * SCAR's claim on one of its workloads, seeded: multinomial logistic regression on MNIST, a PS
 * of 4 shards, one shard lost at each of 4 failure points. Prioritized checkpoints with partial
 * recovery cost fewer updates of rework than full checkpoints with full recovery, for no more
 * checkpoint bytes per update (bench/rework.ts refuses a run where they write more).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PRESETS, runRework, summarise, table } from '../bench/rework.ts';

test('prioritized checkpoints + partial recovery: lower rework cost than full checkpoint recovery (MNIST logreg, seeded)', { timeout: 300_000 }, async () => {
  const result = await runRework({ ...PRESETS['mnist-logreg']!, failures: 4 });
  console.log(table(result));
  const [full, partial, prioritized] = summarise(result);
  assert.equal(full!.trials, 4);
  assert.equal(prioritized!.trials, 16);
  assert.ok(result.bytesPer1000.priority <= result.bytesPer1000.full, 'no more bytes per update than full checkpoints');
  assert.ok(prioritized!.mean < full!.mean, `prioritized + partial ${prioritized!.mean} < full ${full!.mean}`);
  assert.ok(partial!.mean < full!.mean, `partial ${partial!.mean} < full ${full!.mean}`);
});
