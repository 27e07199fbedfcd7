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

// SCAR's failure model on its matrix-factorization workload (synthetic low-rank data): the less
// of the PS a failure loses, the more partial recovery saves against a full rollback, while a
// full rollback costs the same whatever was lost (docs/benchmarks.md, "SCAR's figure").
test('matrix factorization: partial recovery saves more the smaller the fraction of the PS lost (seeded)', { timeout: 120_000 }, async () => {
  const run = async (psShards: number) => summarise(await runRework({ ...PRESETS['mf-synthetic']!, failures: 6, psShards }));
  const quarter = await run(4);
  const sixteenth = await run(16);
  console.log(`1 of 4 lost: ${quarter.map((s) => s.mean.toFixed(1)).join(' / ')}; 1 of 16: ${sixteenth.map((s) => s.mean.toFixed(1)).join(' / ')}`);
  assert.equal(quarter[0]!.mean, sixteenth[0]!.mean, 'a full rollback does not depend on what was lost');
  for (const s of [quarter, sixteenth]) assert.ok(s[1]!.mean < s[0]!.mean && s[2]!.mean < s[0]!.mean, 'partial recovery beats a full rollback');
  assert.ok(sixteenth[1]!.reduction > quarter[1]!.reduction, `reduction with 1/16 lost (${sixteenth[1]!.reduction}) above 1/4 lost (${quarter[1]!.reduction})`);
});
