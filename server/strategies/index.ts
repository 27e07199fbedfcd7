/**
 * The recovery strategies a run can choose with `--strategy NAME`. Each is one module that
 * implements RecoveryStrategy (server/ps/strategy.ts); this table is the only place that
 * knows them all. A strategy reads its own options from the resolved server options.
 *
 * Strategies combine by wrapping, not by flags: `chain(inner)` (server/chain/strategy.ts) is
 * the one wrapper, built by `tabswarm node` around the strategy named here, since it needs the
 * node's ZooKeeper membership (`tabswarm node --strategy checkpoint` = chain(checkpoint)).
 */
import { TabswarmError } from '../../shared/errors.ts';
import type { ResolvedOptions } from '../config.ts';
import { volatile, type RecoveryStrategy } from '../ps/strategy.ts';
import { stateless } from './stateless.ts';
import { checkpointStrategy } from './checkpoint/strategy.ts';

export type StrategyFactory = (options: ResolvedOptions) => RecoveryStrategy;

const STRATEGIES: Record<string, StrategyFactory> = {
  none: () => volatile(),
  stateless: (o) => stateless({ adoptWindowMs: o.adoptWindowMs }),
  checkpoint: (o) => checkpointStrategy(o),
};

export const STRATEGY_NAMES = (): string[] => Object.keys(STRATEGIES);

export function createStrategy(name: string, options: ResolvedOptions): RecoveryStrategy {
  const factory = STRATEGIES[name];
  if (!factory) throw new TabswarmError('CONFIG_INVALID', { option: '--strategy', detail: `unknown strategy '${name}'; known: ${STRATEGY_NAMES().join(', ')}` });
  return factory(options);
}
