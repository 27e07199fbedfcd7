/**
 * A chain node's state as one tagged union (the transition table is in docs/chain.md):
 *
 *   joining      not in the configuration in force (before its registration shows, or after it
 *                re-registered): holds no state the chain agrees on; refuses reads and writes
 *   catching-up  a member without the chain's state: waits for its predecessor's STATE (or, as
 *                head of a cold chain, for the node with the newest checkpoint); refuses both
 *   serving      a member whose state is the chain's (a prefix of its predecessor's history)
 *   fenced       its ZooKeeper session expired, or its registration was removed: another node
 *                may be head; refuses everything until it has registered again
 *
 * `suspect` (ZooKeeper silent, so this node may no longer be a member) qualifies the two member
 * states; it only matters to a head whose replication acks on its own (async, snapshot).
 */
import type { Role } from './membership.ts';

export type ReplicaState =
  | { readonly kind: 'joining' }
  | { readonly kind: 'catching-up'; readonly role: Role; readonly suspect: boolean }
  | { readonly kind: 'serving'; readonly role: Role; readonly suspect: boolean }
  | { readonly kind: 'fenced'; readonly reason: string };

export type ReplicaEvent =
  /** Registered anew in ZooKeeper: the state it holds is not trusted. */
  | { readonly type: 'registered' }
  /** A configuration is in force: this node's role in it (none if absent), and whether the chain is warm. */
  | { readonly type: 'view'; readonly role: Role | undefined; readonly warm: boolean }
  /** A STATE from the predecessor was applied. */
  | { readonly type: 'state-applied' }
  /** A forwarded update did not apply as the version it names: the state must be replaced. */
  | { readonly type: 'diverged' }
  | { readonly type: 'suspect' }
  | { readonly type: 'clear' }
  | { readonly type: 'fenced'; readonly reason: string };

/** The next state; an event with no entry in the table leaves the state as it is. */
export function transition(s: ReplicaState, e: ReplicaEvent): ReplicaState {
  switch (e.type) {
    case 'registered':
      return { kind: 'joining' };
    case 'fenced':
      return { kind: 'fenced', reason: e.reason };
    case 'suspect':
    case 'clear':
      return s.kind === 'serving' || s.kind === 'catching-up' ? { ...s, suspect: e.type === 'suspect' } : s;
    case 'view': {
      if (s.kind === 'fenced') return s; // only a new registration ends it
      if (!e.role) return { kind: 'joining' };
      const suspect = s.kind === 'joining' ? false : s.suspect;
      // The first node of a warm chain is the authority: its state is the chain's, joined or not.
      if (s.kind === 'serving' || ((e.role === 'head' || e.role === 'single') && e.warm)) return { kind: 'serving', role: e.role, suspect };
      return { kind: 'catching-up', role: e.role, suspect };
    }
    case 'state-applied':
      return s.kind === 'catching-up' ? { kind: 'serving', role: s.role, suspect: s.suspect } : s;
    case 'diverged':
      return s.kind === 'serving' ? { kind: 'catching-up', role: s.role, suspect: s.suspect } : s;
  }
}

/** The role this node plays in the configuration in force, if it is a member. */
export function roleIn(s: ReplicaState): Role | undefined {
  return s.kind === 'serving' || s.kind === 'catching-up' ? s.role : undefined;
}

/** Holds state the chain agrees on. */
export const hasState = (s: ReplicaState): boolean => s.kind === 'serving';

/** Whether this node may take writes: the serving head (a suspect one only if the replication says so). */
export function writable(s: ReplicaState, fenceWhenSuspect: boolean): boolean {
  return s.kind === 'serving' && (s.role === 'head' || s.role === 'single') && !(s.suspect && fenceWhenSuspect);
}
