/**
 * The console's controls for supervised nodes: kill and restart act on the child processes;
 * everything else is asked of the nodes through their own admin API (with the one admin token
 * the supervisor gave them all).
 */
import { TabswarmError } from '../../shared/errors.ts';
import { getModel } from '../../shared/models.ts';
import { validateRunChange, type ConsoleControl, type RunChange } from '../admin/control.ts';
import type { Capabilities, RunSettings } from '../admin/types.ts';
import { RULE_NAMES } from '../ps/rules.ts';
import type { Supervisor } from './supervisor.ts';

/** The node options the run settings are read from (`--model`, `--lr`, ...). */
export function optionValue(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) if (args[i] === `--${name}`) value = args[i + 1];
  return value;
}

export class SupervisorControl implements ConsoleControl {
  private settings: RunSettings;

  constructor(private readonly sup: Supervisor) {
    const a = sup.opts.nodeArgs;
    const model = optionValue(a, 'model') ?? 'fashion-cnn';
    const lr = optionValue(a, 'lr');
    this.settings = {
      lr: lr !== undefined ? Number(lr) : getModel(model).defaults.lr,
      rule: optionValue(a, 'rule') ?? 'mean',
      rules: RULE_NAMES,
      strategy: sup.mode === 'chain' ? `chain (${sup.opts.replication})` : (optionValue(a, 'strategy') ?? 'none'),
      model,
      dataset: optionValue(a, 'dataset') ?? 'mnist',
      bufferMode: optionValue(a, 'buffer-mode') ?? 'frozen',
    };
  }

  capabilities(): Capabilities {
    const chain = this.sup.mode === 'chain';
    return { killNode: true, restartNode: true, expireNode: chain, dropShard: optionValue(this.sup.opts.nodeArgs, 'strategy') === 'checkpoint', disconnectWorker: true, setRun: true };
  }

  run(): RunSettings {
    return this.settings;
  }

  private node(name: string) {
    const n = this.sup.node(name);
    if (!n) throw new TabswarmError('ADMIN_NO_NODE', { node: name, nodes: this.sup.nodes.map((x) => x.name).join(', ') });
    return n;
  }

  /** POST to a node's admin API; the node's own error (code, status) is passed on. */
  private async post(url: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(new URL(path, url), {
      method: 'POST',
      headers: { authorization: `Bearer ${this.sup.opts.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10000),
    });
    const json = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    if (!res.ok) throw Object.assign(new Error(json.message ?? `POST ${path}: ${res.status}`), { statusCode: res.status, code: json.code });
    return json;
  }

  private up() {
    return this.sup.nodes.filter((n) => n.health === 'up');
  }

  async setRun(change: RunChange): Promise<RunSettings> {
    validateRunChange(change);
    if (this.sup.mode === 'chain') {
      // A chain replicates the change from its head (server/chain/control.ts): the others refuse
      // it with CHAIN_NOT_HEAD. Setting it on every node would change it at different versions.
      let done = false;
      for (const n of this.up()) {
        try {
          await this.post(n.url, '/api/admin/run', change);
          done = true;
          break;
        } catch (err) {
          if ((err as { code?: string }).code !== 'CHAIN_NOT_HEAD') throw err;
        }
      }
      if (!done) throw new TabswarmError('CHAIN_NOT_READY', { node: 'any', epoch: 'unknown' });
    } else {
      await Promise.all(this.up().map((n) => this.post(n.url, '/api/admin/run', change)));
    }
    // Nodes started later get the same settings.
    if (change.lr !== undefined) this.sup.overrides.lr = String(change.lr);
    if (change.rule !== undefined) this.sup.overrides.rule = change.rule;
    this.settings = { ...this.settings, ...(change.lr !== undefined ? { lr: change.lr } : {}), ...(change.rule !== undefined ? { rule: change.rule } : {}) };
    return this.settings;
  }

  async killNode(name: string): Promise<unknown> {
    this.node(name);
    return this.sup.kill(name);
  }

  async restartNode(name: string): Promise<unknown> {
    this.node(name);
    return this.sup.restart(name);
  }

  async expireNode(name: string): Promise<unknown> {
    const n = this.node(name);
    if (this.sup.mode !== 'chain') throw new TabswarmError('ADMIN_NO_SUPERVISOR', { action: "expire a node's ZooKeeper session", hint: 'a single PS has no ZooKeeper session; start the cluster with --replication' });
    return this.post(n.url, '/api/admin/zk/expire');
  }

  async dropShard(name: string, shard: number): Promise<unknown> {
    return this.post(this.node(name).url, `/api/admin/shards/${shard}/drop`);
  }

  async disconnectWorker(id: number): Promise<unknown> {
    for (const n of this.up()) {
      try {
        return await this.post(n.url, `/api/admin/workers/${id}/disconnect`);
      } catch (err) {
        if ((err as { code?: string }).code !== 'ADMIN_NO_WORKER') throw err;
      }
    }
    throw new TabswarmError('ADMIN_NO_WORKER', { worker: id });
  }
}
