/**
 * How an update that sums `count` gradients, computed `staleness` versions ago, is applied.
 * A rule returns the factor the optimizer multiplies the summed gradient by, and may lower the
 * learning rate for this one update. Every push goes through the run's rule; an ordinary push
 * (count 1, staleness about the number of workers) is affected as the formulas say.
 *
 *   sum        the reference (Cao et al. 2024): the summed gradient as is, with the learning
 *              rate cut tenfold (1e-2 -> 1e-3) when the update holds more than 50 gradients
 *   mean       the mean of the gradients (factor 1/count); the default
 *   staleness  the mean, scaled by 1/(1 + tau), tau = versions applied since the gradients'
 *              base (staleness-aware async SGD, Zhang et al. 2016)
 */
import { TabswarmError } from '../../shared/errors.ts';

export interface RuleInput {
  readonly count: number;
  readonly staleness: number;
  readonly lr: number;
}

export interface RuleOutput {
  /** Multiplies the summed gradient. */
  readonly scale: number;
  /** Learning rate for this update. */
  readonly lr: number;
}

export type StaleRule = (u: RuleInput) => RuleOutput;

/** Updates holding more gradients than this get the `sum` rule's lowered learning rate. */
export const SUM_RULE_BACKLOG = 50;

export const RULES = {
  sum: ({ count, lr }) => ({ scale: 1, lr: count > SUM_RULE_BACKLOG ? lr / 10 : lr }),
  mean: ({ count, lr }) => ({ scale: 1 / count, lr }),
  staleness: ({ count, staleness, lr }) => ({ scale: 1 / (count * (1 + staleness)), lr }),
} as const satisfies Record<string, StaleRule>;

export type RuleName = keyof typeof RULES;
export const RULE_NAMES = Object.keys(RULES) as RuleName[];

/**
 * Local-steps runs (--local-steps H > 1, DiLoCo): an update is the sum of a worker's H inner
 * gradients (or of an outage's), and the model delta it stands for is innerLr x that sum. The
 * outer optimizer (Nesterov SGD at the PS's lr) takes the delta whole: however many steps it
 * holds, none is averaged away, which is what lets outage compute count in full.
 */
export function outerRule(innerLr: number): StaleRule {
  return ({ lr }) => ({ scale: innerLr, lr });
}

export function getRule(name: string): StaleRule {
  if (!Object.hasOwn(RULES, name)) throw new TabswarmError('CONFIG_INVALID', { option: '--rule', detail: `unknown stale-update rule '${name}'; known: ${RULE_NAMES.join(', ')}` });
  return RULES[name as RuleName];
}
