/**
 * One look at a set of PS nodes over their public HTTP API (/api/status, /api/cluster,
 * /api/series): the console's source of truth, whether it runs inside a PS (through
 * `app.inject`), in the cluster supervisor or in the experiment harness (through fetch).
 * A node that does not answer within the timeout is `down`; a PS without /api/cluster (404)
 * is the single embedded PS.
 */
import type { ClusterView, EvalView, NodeHealth, NodeView, RobustnessView, Snapshot, WorkerView } from '../../shared/admin-api.ts';
import type { ClusterInfo, SeriesResponse, StatusResponse } from '../../shared/api.ts';
import type { HistoryPoint } from './recorder.ts';

/** GET `path` on the node at `url`: the JSON body, null on 404, throws when unreachable. */
export type FetchJson = (url: string, path: string) => Promise<unknown>;

export interface ProbeTarget {
  readonly name: string;
  readonly url: string;
  readonly pid?: number;
  /** What the supervisor knows without asking: a node it has not started is down. */
  readonly health?: NodeHealth;
}

export function httpFetchJson(timeoutMs = 1500): FetchJson {
  return async (url, path) => {
    const res = await fetch(new URL(path, url), { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`GET ${path} on ${url}: ${res.status}`);
    return res.json();
  };
}

const sameNode = (a: string, b: string): boolean => {
  try {
    return new URL(a).host === new URL(b).host;
  } catch {
    return false;
  }
};

export async function probe(targets: readonly ProbeTarget[], fetchJson: FetchJson): Promise<Snapshot> {
  const looks = await Promise.all(targets.map(async (target) => {
    if (target.health === 'down') return { target };
    try {
      const [status, cluster, series] = await Promise.all([
        fetchJson(target.url, '/api/status') as Promise<StatusResponse>,
        fetchJson(target.url, '/api/cluster') as Promise<ClusterInfo | null>,
        fetchJson(target.url, '/api/series') as Promise<SeriesResponse>,
      ]);
      return { target, status, cluster, series };
    } catch {
      return { target };
    }
  }));

  // The freshest cluster document (highest epoch) names the roles of every node.
  let cluster: ClusterInfo | null = null;
  for (const l of looks) if (l.cluster && (!cluster || l.cluster.epoch > cluster.epoch)) cluster = l.cluster;
  const single = looks.every((l) => !l.cluster) && targets.length === 1;

  const nodes: NodeView[] = looks.map((l) => {
    const member = cluster?.nodes.find((n) => n.name === l.target.name || sameNode(n.url, l.target.url));
    const up = l.status !== undefined;
    return {
      name: l.target.name,
      url: l.target.url,
      role: !up ? null : single ? 'single' : (member?.role ?? null),
      health: up ? 'up' : (l.target.health === 'starting' ? 'starting' : 'down'),
      epoch: up ? (l.cluster?.epoch ?? null) : null,
      version: l.status?.version ?? null,
      updatesApplied: l.status?.updatesApplied ?? null,
      updatesPerSec: l.status?.updatesPerSec ?? 0,
      ...(l.target.pid !== undefined ? { pid: l.target.pid } : {}),
    };
  });

  const workers = new Map<number, WorkerView>();
  for (const l of looks) {
    for (const w of l.status?.workers ?? []) {
      const view: WorkerView = {
        id: w.id, node: l.target.name, backend: w.backend ?? null, examplesPerSec: w.examplesPerSec ?? 0, state: w.state,
        buffered: w.buffered ?? 0, staleness: w.lastStaleness, steps: w.steps ?? 0, lastSeenMsAgo: w.lastSeenMsAgo,
      };
      const seen = workers.get(w.id);
      if (!seen || view.lastSeenMsAgo < seen.lastSeenMsAgo) workers.set(w.id, view);
    }
  }

  // Accuracy: the latest evaluation of the node with the newest model.
  let evalView: EvalView | null = null;
  for (const l of looks) {
    const p = l.series?.points.at(-1);
    if (p && (!evalView || p.version > evalView.version)) evalView = { accuracy: p.accuracy, loss: p.loss, version: p.version, node: l.target.name, t: p.t };
  }

  // Pushes reach the head (or the single PS) only: its aggregator, guard and offenders are the run's.
  let robustness: RobustnessView | null = null;
  for (const [i, l] of looks.entries()) {
    const r = l.status?.robustness;
    if (!r || (robustness && nodes[i]!.role !== 'head')) continue;
    const g = r.lastGuardRefusal;
    robustness = {
      node: l.target.name, aggregator: r.aggregator, clipped: r.clipped, radius: r.radius, excessLimited: r.excessLimited ?? 0, directionLimited: r.directionLimited ?? 0, versionsRefused: r.versionsRefused,
      lastGuardRefusal: g ? { version: g.version, workerId: g.workerId, reason: g.reason } : null, offenders: r.offenders, keptOut: r.keptOut,
    };
  }

  const info: ClusterView | null = cluster
    ? { name: cluster.cluster, epoch: cluster.epoch, replication: cluster.replication, reads: cluster.reads, head: cluster.head, tail: cluster.tail }
    : null;
  return { mode: single ? 'single' : 'cluster', cluster: info, nodes, workers: [...workers.values()].sort((a, b) => a.id - b.id), eval: evalView, robustness };
}

/** A node's evaluation series as wall-clock points: what a late recorder backfills from. */
export async function seriesHistory(url: string, fetchJson: FetchJson): Promise<HistoryPoint[]> {
  const series = (await fetchJson(url, '/api/series')) as SeriesResponse | null;
  const startedAt = series?.startedAt;
  if (!series || startedAt === undefined) return [];
  return series.points.map((p) => ({ at: startedAt + p.t * 1000, version: p.version, updates: p.updates, accuracy: p.accuracy, loss: p.loss }));
}
