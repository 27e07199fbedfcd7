/**
 * Replicated control (issue 13): the run's learning rate and stale-update rule are part of the
 * chain's state. An admin change is made at the head only (`replicateRun`, refused elsewhere
 * with CHAIN_NOT_HEAD), counted by a control version, and travels down the chain inside the
 * update stream: every FORWARD carries the control block in force when the head applied that
 * update, and every STATE the one in force at its version (frames.ts). A replica adopts a
 * frame's block just before applying it, so each update is applied under the same lr and rule
 * on every node, in the same order, and replicas stay bitwise identical across a change. A node
 * that joins later takes the current block with its state transfer.
 *
 * Why inside FORWARD rather than a frame of its own: a FORWARD is encoded in the same
 * synchronous step as the head's apply (service.ts -> strategy afterApply -> replica.forward),
 * so the block it carries is exactly the one the head used, and the resend, trim and epoch
 * rules of forwarded frames cover control for free. The cost is 16 bytes per FORWARD.
 */
import { TabswarmError } from '../../shared/errors.ts';
import type { RunChange } from '../../shared/admin-api.ts';
import { getRule, RULE_NAMES } from '../ps/rules.ts';
import type { ParameterStore } from '../ps/store.ts';
import type { ControlBlock } from './frames.ts';

/** A strategy whose run changes must go through replication (the chain's). */
export interface RunReplication {
  /** Applies a run change at the head and counts it; throws CHAIN_NOT_HEAD (etc.) elsewhere. */
  replicateRun(change: RunChange): ControlBlock;
}

export function isRunReplication(s: object): s is RunReplication {
  return typeof (s as Partial<RunReplication>).replicateRun === 'function';
}

/** The name of the rule a store applies (rules are stateless entries of one table). */
export function ruleNameOf(store: ParameterStore): string | undefined {
  return RULE_NAMES.find((n) => getRule(n) === store.rule);
}

export class RunControl {
  /** Changes made at a head so far, as this node has applied them. */
  version = 0;

  constructor(private readonly store: () => ParameterStore) {}

  /** The block the next FORWARD or STATE carries. */
  current(): ControlBlock {
    const s = this.store();
    const rule = RULE_NAMES.findIndex((n) => getRule(n) === s.rule);
    if (rule < 0) throw new TabswarmError('CONFIG_INVALID', { option: '--rule', detail: 'the store applies a rule outside RULE_NAMES, which a chain cannot replicate' });
    return { version: this.version, rule, lr: s.optimizer.lr };
  }

  /** Takes the predecessor's block before applying what it came with. */
  adopt(c: ControlBlock): void {
    const s = this.store();
    const name = RULE_NAMES[c.rule];
    if (name === undefined) throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `control block names rule ${c.rule}; this node knows ${RULE_NAMES.length}` });
    if (s.optimizer.lr !== c.lr) s.optimizer.lr = c.lr;
    const rule = getRule(name);
    if (s.rule !== rule) s.rule = rule;
    this.version = c.version;
  }

  /** A change made here, at the head: in force for the next update this node applies. */
  change(change: RunChange): ControlBlock {
    const s = this.store();
    const rule = change.rule !== undefined ? getRule(change.rule) : undefined; // CONFIG_INVALID before anything changes
    if (change.lr !== undefined) s.optimizer.lr = change.lr;
    if (rule) s.rule = rule;
    this.version += 1;
    return this.current();
  }
}
