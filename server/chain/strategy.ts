/**
 * `chain(inner)`: chain replication as a strategy that wraps another one, the way Flower's
 * strategy wrappers hold a strategy and forward to it. `tabswarm node --strategy checkpoint`
 * runs `chain(checkpoint)`: every node keeps the checkpoint durability (it checkpoints what it
 * applies, as head or as replica), and the chain adds admission (writes on the head only, reads
 * once a node holds the chain's state) and replication (the ack waits for what the replication
 * mode promises, and for the inner durability).
 *
 *   const node = chain(createStrategy('checkpoint', options), replica);
 *
 * What the inner durability makes durable is published in ZooKeeper (Membership.publishDurable)
 * so that a cluster restarted after every node died resumes from the newest checkpoint any node
 * holds (docs/chain.md, "Cold start").
 */
import { TabswarmError } from '../../shared/errors.ts';
import { isCheckpointControl, controlsOf } from '../strategies/checkpoint/strategy.ts';
import type { AppliedUpdate, RecoveryStrategy, StrategyContext } from '../ps/strategy.ts';
import type { RunReplication } from './control.ts';
import type { ChainReplica } from './replica.ts';

/** Inner strategies a chain can wrap: a stateless PS recovers from workers, a chain node from its predecessor. */
export const CHAIN_INNER = ['none', 'checkpoint'] as const;

/** Both results: a promise if either is one. */
function both(a: void | Promise<void>, b: void | Promise<void>): void | Promise<void> {
  if (!a) return b;
  if (!b) return a;
  return Promise.all([a, b]).then(() => {});
}

export function chain(inner: RecoveryStrategy, replica: ChainReplica): RecoveryStrategy {
  if (!(CHAIN_INNER as readonly string[]).includes(inner.name)) {
    throw new TabswarmError('CONFIG_INVALID', { option: '--strategy', detail: `a chain node can wrap ${CHAIN_INNER.join(' or ')}, not '${inner.name}' (a chain node takes its state from its predecessor)` });
  }
  const strategy: RecoveryStrategy & RunReplication = {
    replicateRun: (change) => replica.changeRun(change),
    name: inner.name === 'none' ? 'chain' : `chain+${inner.name}`,
    async start(ctx: StrategyContext) {
      // The inner durability restores first (the store then holds the node's newest
      // checkpoint); what it reports durable is published for the cold-start rule.
      const reportDurable = (version: number) => {
        ctx.reportDurable(version);
        void replica.membership.publishDurable(version);
      };
      await inner.start({ ...ctx, reportDurable });
      replica.start(ctx, inner);
    },
    afterApply(u: AppliedUpdate) {
      // The replica first: forwards go down the chain in version order, synchronously.
      const replicated = replica.afterApply(u);
      return both(replicated, inner.afterApply(u));
    },
    durable: (version) => both(replica.durable(version), inner.durable(version)),
    status: () => ({ ...replica.status(), inner: { name: inner.name, ...inner.status() } }),
    async stop() {
      await replica.stop();
      await inner.stop();
    },
    ready: () => inner.ready(),
    wantsWeights: () => inner.wantsWeights(),
    offer: (o) => inner.offer(o),
    workerConnected: (id) => inner.workerConnected(id),
    admitWrite() {
      replica.admitWrite();
      inner.admitWrite();
    },
    admitRead() {
      replica.admitRead();
      inner.admitRead();
    },
  };
  // The admin API's checkpoint controls (drop a shard, checkpoint now) reach the wrapped strategy.
  return isCheckpointControl(inner) ? { ...strategy, ...controlsOf(inner) } : strategy;
}
