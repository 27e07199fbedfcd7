/**
 * The ledger checker (Jepsen's checker, for chain replication): from what the workers were told
 * (every acknowledged push: worker, seq, version, duplicate) and what the replicas hold at the
 * end (each node's GET /api/admin/chain/history: the (worker, seq) that made each version, and a
 * SHA-256 of its weights and velocity), a verdict on the chain's promises:
 *
 * - every acknowledged push is applied exactly once (`lost`, `appliedTwice`);
 * - versions run 1..V with no gap and no repeat: the history covers every version once, and no
 *   two fresh acks named one version (`gaps`, `repeats`), each fresh ack naming the version its
 *   push made (`misplaced`);
 * - every replica holds the same bytes and the same history (`divergent`).
 *
 * Pure data in, data out: the unit test feeds it fabricated ledgers, so it is known to fail.
 */

/** One acknowledgement a worker received. */
export interface AckRecord {
  readonly worker: number;
  readonly seq: number;
  /** The version the ack named: the push's own (fresh) or its first apply's (duplicate). */
  readonly version: number;
  readonly duplicate: boolean;
}

/** GET /api/admin/chain/history of one node. */
export interface ReplicaHistory {
  /** Which node, for the report. */
  readonly node?: string;
  /** Version of entries[0]. */
  readonly start: number;
  readonly version: number;
  readonly digest: string;
  /** [workerId, seq] of versions start, start+1, .... */
  readonly entries: readonly (readonly [number, number])[];
}

export interface Verdict {
  /** True when every list below is empty. */
  readonly ok: boolean;
  /** The final version V the replicas agree on (the longest history's when they do not). */
  readonly version: number;
  readonly acked: number;
  readonly replicas: number;
  /** Acknowledged pushes that no replica's history holds. */
  readonly lost: readonly { worker: number; seq: number; version: number }[];
  /** Pushes the history holds at more than one version. */
  readonly appliedTwice: readonly { worker: number; seq: number; versions: number[] }[];
  /** Versions in 1..V that no history entry accounts for (a history that does not start at 1, or is short). */
  readonly gaps: readonly number[];
  /** Versions named by fresh acks of two different pushes. */
  readonly repeats: readonly { version: number; pushes: string[] }[];
  /** Fresh acks whose version was made by another push (or by none). */
  readonly misplaced: readonly { worker: number; seq: number; acked: number; applied: number | null }[];
  /** Replicas whose version, digest or history differ from the reference replica. */
  readonly divergent: readonly { node: string; why: string }[];
  /** Versions applied but never acknowledged: legal (a worker stopped before its ack came), reported only. */
  readonly unacknowledged: number;
}

const key = (w: number, s: number) => `${w}:${s}`;

/** Checks the ledgers; never throws on bad data, it reports it. */
export function checkLedger(acks: readonly AckRecord[], histories: readonly ReplicaHistory[]): Verdict {
  // The reference: the replica whose history reaches back furthest (the others must be its suffix).
  const sorted = [...histories].sort((a, b) => a.start - b.start || b.version - a.version);
  const ref = sorted[0];
  const version = ref?.version ?? 0;
  const divergent: { node: string; why: string }[] = [];
  if (!ref) divergent.push({ node: '-', why: 'no replica answered' });
  for (const h of sorted.slice(1)) {
    const node = h.node ?? '?';
    if (h.version !== ref!.version) divergent.push({ node, why: `at version ${h.version}, the reference at ${ref!.version}` });
    else if (h.digest !== ref!.digest) divergent.push({ node, why: `weights/velocity digest ${h.digest.slice(0, 12)} differs from ${ref!.digest.slice(0, 12)}` });
    const offset = h.start - ref!.start;
    const differs = h.entries.findIndex((e, i) => { const r = ref!.entries[offset + i]; return !r || r[0] !== e[0] || r[1] !== e[1]; });
    if (differs >= 0) divergent.push({ node, why: `history differs at version ${h.start + differs}` });
  }

  // Where each (worker, seq) was applied, and which versions the history accounts for.
  const appliedAt = new Map<string, number[]>();
  const madeBy = new Map<number, string>();
  if (ref) {
    ref.entries.forEach(([w, s], i) => {
      const v = ref.start + i;
      const k = key(w, s);
      appliedAt.set(k, [...(appliedAt.get(k) ?? []), v]);
      madeBy.set(v, k);
    });
  }
  const gaps: number[] = [];
  for (let v = 1; v <= version; v++) if (!madeBy.has(v)) gaps.push(v);
  const appliedTwice = [...appliedAt].filter(([, vs]) => vs.length > 1).map(([k, versions]) => {
    const [w, s] = k.split(':').map(Number);
    return { worker: w!, seq: s!, versions };
  });

  const lost: { worker: number; seq: number; version: number }[] = [];
  const misplaced: { worker: number; seq: number; acked: number; applied: number | null }[] = [];
  const freshAt = new Map<number, Set<string>>();
  const ackedKeys = new Set<string>();
  for (const a of acks) {
    const k = key(a.worker, a.seq);
    if (ackedKeys.has(k) && a.duplicate) continue; // a retry's ack: the first one is checked
    ackedKeys.add(k);
    const at = appliedAt.get(k);
    if (!at) lost.push({ worker: a.worker, seq: a.seq, version: a.version });
    if (a.duplicate) continue;
    freshAt.set(a.version, (freshAt.get(a.version) ?? new Set()).add(k));
    if (at && at[0] !== a.version) misplaced.push({ worker: a.worker, seq: a.seq, acked: a.version, applied: at[0]! });
  }
  const repeats = [...freshAt].filter(([, ks]) => ks.size > 1).map(([v, ks]) => ({ version: v, pushes: [...ks] }));
  let unacknowledged = 0;
  for (const k of madeBy.values()) if (!ackedKeys.has(k)) unacknowledged++;

  const ok = !lost.length && !appliedTwice.length && !gaps.length && !repeats.length && !misplaced.length && !divergent.length;
  return { ok, version, acked: ackedKeys.size, replicas: histories.length, lost, appliedTwice, gaps, repeats, misplaced, divergent, unacknowledged };
}

/** One line per broken promise (at most `max` items each), or 'clean'. */
export function describeVerdict(v: Verdict, max = 5): string {
  if (v.ok) return `clean: ${v.acked} acknowledged pushes, versions 1..${v.version} each applied once, ${v.replicas} replicas bitwise identical (${v.unacknowledged} applied but unacknowledged)`;
  const part = (name: string, list: readonly unknown[]) => (list.length ? [`${name} ${list.length}: ${JSON.stringify(list.slice(0, max))}`] : []);
  return [
    `VIOLATED (final version ${v.version}, ${v.acked} acknowledged pushes, ${v.replicas} replicas)`,
    ...part('lost acknowledged pushes', v.lost),
    ...part('applied twice', v.appliedTwice),
    ...part('version gaps', v.gaps),
    ...part('version repeats', v.repeats),
    ...part('acks naming another push\'s version', v.misplaced),
    ...part('divergent replicas', v.divergent),
  ].join('\n');
}
