/**
 * How a chain head tells its replicas what it decided for an update (store.ts Decision), in
 * the flags byte of the chain's FORWARD frame, beside Flag.FLUSH (0x04):
 *
 *   DECIDED  0x40  the payload is the aggregator's step: apply it with scale 1
 *   SKIP     0x80  nothing was applied (a window still collecting, or the output guard refused
 *                  the version): the payload is zeros; take the version, leave the weights
 *   neither        the payload is the worker's gradient: apply it with the rule's scale (`none`)
 *
 * Replicas never run an aggregator or the output guard, so they need none of their state: what
 * the head applied is what every node applies, and the chain's one SHA-256 of the state holds.
 */
import type { Decision } from '../store.ts';

export const DecisionFlag = { DECIDED: 0x40, SKIP: 0x80 } as const;

/** The payload and flag bits a forward of `decision` carries. */
export function forwardOf(decision: Decision, size: number): { grad: Float32Array; flags: number } {
  if (!decision.grad) return { grad: new Float32Array(size), flags: DecisionFlag.SKIP };
  return { grad: decision.grad, flags: decision.decided ? DecisionFlag.DECIDED : 0 };
}

/** The decision a forward with these flags carries. */
export function decisionOf(flags: number, grad: Float32Array): Decision {
  if (flags & DecisionFlag.SKIP) return { grad: null, decided: true };
  return { grad, decided: (flags & DecisionFlag.DECIDED) !== 0 };
}
