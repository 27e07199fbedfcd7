/**
 * What the console's buttons do. The single embedded PS (`tabswarm start`) can change its own
 * run settings, drop one of its checkpoint shards and disconnect a worker; it cannot kill or
 * restart itself as a node (that needs a supervisor that outlives it: `tabswarm cluster`), so
 * those controls are reported as unavailable and answer ADMIN_NO_SUPERVISOR. On a chain node a
 * run change is replicated: accepted at the head only, and carried down the chain.
 */
import { TabswarmError } from '../../shared/errors.ts';
import type { ResolvedOptions } from '../config.ts';
import { getRule, RULE_NAMES } from '../ps/rules.ts';
import type { ParameterServer } from '../ps/service.ts';
import { isCheckpointControl } from '../strategies/checkpoint/strategy.ts';
import { isRunReplication, ruleNameOf } from '../chain/control.ts';
import type { Capabilities, RunChange, RunSettings } from '../../shared/admin-api.ts';

/** POST /api/admin/run's body; declared (with its route schema) in shared/admin-api.ts. */
export type { RunChange } from '../../shared/admin-api.ts';

export interface ConsoleControl {
  capabilities(): Capabilities;
  run(): RunSettings | Promise<RunSettings>;
  setRun(change: RunChange): Promise<RunSettings>;
  killNode(name: string): Promise<unknown>;
  restartNode(name: string): Promise<unknown>;
  expireNode(name: string): Promise<unknown>;
  dropShard(node: string, shard: number): Promise<unknown>;
  disconnectWorker(id: number): Promise<unknown>;
}

/** Checks a run change; CONFIG_INVALID names the bad field. */
export function validateRunChange(change: RunChange): void {
  if (change.lr !== undefined && !(typeof change.lr === 'number' && change.lr > 0 && Number.isFinite(change.lr))) {
    throw new TabswarmError('CONFIG_INVALID', { option: 'lr', detail: `must be a positive number, got ${String(change.lr)}` });
  }
  if (change.rule !== undefined) getRule(change.rule);
}

export class EmbeddedControl implements ConsoleControl {
  constructor(private readonly ps: ParameterServer, private readonly options: ResolvedOptions, private readonly selfName = 'ps') {}

  capabilities(): Capabilities {
    return { killNode: false, restartNode: false, expireNode: false, dropShard: isCheckpointControl(this.ps.strategy), disconnectWorker: true, setRun: true };
  }

  run(): RunSettings {
    const o = this.options;
    // The store's rule, not the options': a chain replica takes the head's from the stream.
    return { lr: this.ps.store.optimizer.lr, rule: ruleNameOf(this.ps.store) ?? o.rule, rules: RULE_NAMES, strategy: this.ps.strategy.name, model: o.model, dataset: o.dataset, bufferMode: o.bufferMode };
  }

  async setRun(change: RunChange): Promise<RunSettings> {
    validateRunChange(change);
    // A chain node: a change is made at the head only and replicated down the chain in order
    // with the updates (server/chain/control.ts); elsewhere CHAIN_NOT_HEAD names the head.
    if (isRunReplication(this.ps.strategy)) this.ps.strategy.replicateRun(change);
    else {
      if (change.lr !== undefined) this.ps.store.optimizer.lr = change.lr;
      if (change.rule !== undefined) this.ps.store.rule = getRule(change.rule);
    }
    // /api/model reports the run's rule from the options.
    if (change.rule !== undefined) this.options.rule = change.rule;
    return this.run();
  }

  private noSupervisor(action: string): never {
    throw new TabswarmError('ADMIN_NO_SUPERVISOR', { action, hint: 'run the PS under `tabswarm cluster`, whose console can kill and restart node processes' });
  }

  async killNode(): Promise<never> {
    this.noSupervisor('kill a node');
  }

  async restartNode(): Promise<never> {
    this.noSupervisor('restart a node');
  }

  async expireNode(): Promise<never> {
    this.noSupervisor("expire a node's ZooKeeper session");
  }

  async dropShard(node: string, shard: number): Promise<unknown> {
    if (node !== this.selfName) throw new TabswarmError('ADMIN_NO_NODE', { node, nodes: this.selfName });
    if (!isCheckpointControl(this.ps.strategy)) throw new TabswarmError('ADMIN_UNSUPPORTED', { strategy: this.ps.strategy.name, action: 'drop a PS shard', hint: 'start the PS with --strategy checkpoint' });
    const states = this.ps.strategy.shardStates();
    if (!Number.isInteger(shard) || shard < 0 || shard >= states.length) throw new TabswarmError('ADMIN_NO_SHARD', { shard, shards: states.length });
    return this.ps.strategy.dropShard(shard);
  }

  async disconnectWorker(id: number): Promise<unknown> {
    if (!this.ps.sessions.get(id)) throw new TabswarmError('ADMIN_NO_WORKER', { worker: id });
    // Ends the session: the worker's socket closes and its shards go to the others; the worker
    // may join again as a new session, as after any disconnect.
    this.ps.leave(id, 'disconnected by the admin console');
    return { worker: id, disconnected: true };
  }
}
