/**
 * The strategies an experiment compares, as `tabswarm cluster` options. The single-PS ones run
 * one supervised `tabswarm start`; the chains run three `tabswarm node`s on a local ZooKeeper.
 * A kill hits the node that holds the authoritative state: the single PS, or the chain's head.
 */
export interface ExperimentStrategy {
  readonly name: string;
  readonly label: string;
  /** Options for `tabswarm cluster`; `{dir}` is replaced by the run's folder. */
  readonly clusterArgs: readonly string[];
  readonly chain: boolean;
}

export const EXPERIMENT_STRATEGIES: readonly ExperimentStrategy[] = [
  { name: 'sync-checkpoint', label: 'sync checkpoint', chain: false, clusterArgs: ['--strategy', 'checkpoint', '--checkpoint-mode', 'sync', '--checkpoint-dir', '{dir}/checkpoints'] },
  { name: 'async-checkpoint', label: 'async checkpoint', chain: false, clusterArgs: ['--strategy', 'checkpoint', '--checkpoint-mode', 'async', '--checkpoint-dir', '{dir}/checkpoints'] },
  { name: 'sync-chain', label: 'sync chain', chain: true, clusterArgs: ['--replication', 'sync', '--nodes', '3'] },
  { name: 'async-chain', label: 'async chain', chain: true, clusterArgs: ['--replication', 'async', '--nodes', '3'] },
  { name: 'snapshot-chain', label: 'snapshot chain', chain: true, clusterArgs: ['--replication', 'snapshot', '--nodes', '3'] },
  { name: 'stateless', label: 'stateless', chain: false, clusterArgs: ['--strategy', 'stateless'] },
  { name: 'none', label: 'no recovery', chain: false, clusterArgs: ['--strategy', 'none'] },
];

/** The reference comparison's strategies, in order (`--strategies all`). */
export const REFERENCE_STRATEGIES = ['sync-checkpoint', 'async-checkpoint', 'sync-chain', 'async-chain', 'snapshot-chain', 'stateless'] as const;

/**
 * A strategy by name, optionally with node options: `stateless+rule=sum+buffer-mode=local` is
 * the stateless PS run with `--rule sum --buffer-mode local` (how the defaults were chosen).
 */
export function getExperimentStrategy(spec: string): ExperimentStrategy | undefined {
  const [name, ...options] = spec.split('+');
  const base = EXPERIMENT_STRATEGIES.find((s) => s.name === name);
  if (!base || !options.length) return base;
  const pairs = options.map((o) => o.split('='));
  if (pairs.some((p) => p.length !== 2 || !/^[a-z][a-z-]*$/.test(p[0]!) || !p[1])) return undefined;
  return {
    name: spec.replace(/[^A-Za-z0-9_.+-]/g, '_').replace(/=/g, '-'),
    label: `${base.label} (${pairs.map(([k, v]) => `${k} ${v}`).join(', ')})`,
    chain: base.chain,
    clusterArgs: [...base.clusterArgs, ...pairs.flatMap(([k, v]) => [`--${k}`, v!])],
  };
}
