/**
 * Where a worker of a chain-replicated PS cluster (server/chain) writes: what it knows of the
 * cluster, how it merges what nodes tell it, and the search for the head after a failure.
 * Pure logic over an injected fetch: no socket, no state outside this object, a timeout on
 * every request (client/head-locator.test.ts drives it with a fake fetch).
 *
 * Search (locate): ask every known node for /api/cluster and take the head of the highest
 * epoch; unreachable nodes are ignored. If that head is still the node that just failed, or a
 * node that did not answer this round, the cluster has not reconfigured yet: long-poll the
 * other nodes for the next epoch, which comes once the chain drops the dead node (fast detect,
 * or ZooKeeper expiring its session). A node that refused as not the head at epoch E and is
 * named head at an epoch above E has become the head since: it is taken at once. An older
 * epoch never changes what is known.
 */
import { ClusterInfoSchema, type ClusterInfo } from '../shared/api.ts';
import { TabswarmError } from '../shared/errors.ts';
import { parseAs } from '../shared/validate.ts';

/** What the worker knows of its cluster. */
export interface ClusterView {
  epoch: number;
  /** Node URLs learnt so far (at most MAX_NODES), the first write node first. */
  nodes: string[];
  reads?: 'strict' | 'relaxed';
  tail?: string | null;
}

export interface HeadLocatorOptions {
  readonly fetch: typeof fetch;
  /** Timeout of the write node's /api/cluster read (join, report). @default 2000 */
  readonly readTimeoutMs?: number;
  /** Timeout of one /api/cluster read during the search. @default 1500 */
  readonly askTimeoutMs?: number;
  /** How long a node may hold a long poll for the next epoch. @default 4000 */
  readonly waitMs?: number;
  /** Timeout of one long poll (above waitMs: the node answers at waitMs at the latest). @default 5000 */
  readonly waitTimeoutMs?: number;
}

/** A cluster has a handful of nodes; a view never grows past this, whatever nodes claim. */
export const MAX_NODES = 64;

/** GET /api/cluster on `node`, optionally as a long poll for an epoch above `after`; the answer is checked. */
export async function fetchClusterInfo(fetchFn: typeof fetch, node: string, timeoutMs: number, wait?: { after: number; waitMs: number }): Promise<ClusterInfo> {
  const url = new URL('/api/cluster', node);
  if (wait) url.search = `after=${wait.after}&waitMs=${wait.waitMs}`;
  const res = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) {
    const body: unknown = await res.json().catch(() => undefined);
    throw TabswarmError.fromJSON(body) ?? new TabswarmError('WORKER_DISCONNECTED', { code: res.status, reason: `GET /api/cluster on ${node}` });
  }
  return parseAs(ClusterInfoSchema, await res.json(), 'GET /api/cluster');
}

/** An absolute http(s) URL, normalised as the nodes spell theirs; undefined for anything else. */
function nodeUrl(text: string): string | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.toString() : undefined;
  } catch {
    return undefined;
  }
}

export class HeadLocator {
  /** Undefined until the PS turns out to be a node of a cluster (a single PS has no /api/cluster). */
  view: ClusterView | undefined;
  /** The last failure says the write node may have changed: locate the head before reconnecting. */
  pending = false;
  /**
   * Whether the write node has said what it is: a cluster's /api/cluster (then `view` is set) or
   * a single PS's 404. Until then every join and report reads again: a read that timed out or
   * found the node busy (a cluster answers 503 while it forms) says nothing, and a worker that
   * stopped asking after it would never learn of the other nodes, so it would retry a dead head
   * for as long as that node stayed down.
   */
  settled = false;
  /** The write node refused as not the head at this epoch (CHAIN_NOT_HEAD): for the next search only. */
  private refusedAt: { node: string; epoch: number } | undefined;

  constructor(private readonly opts: HeadLocatorOptions) {}

  /** Merges what a node said of the chain; an older epoch changes nothing. */
  absorb(c: ClusterInfo, self: string): void {
    this.settled = true;
    const known = (this.view ??= { epoch: c.epoch, nodes: [self] });
    if (c.epoch < known.epoch) return;
    Object.assign(known, { epoch: c.epoch, reads: c.reads, tail: c.tail });
    for (const n of c.nodes) this.addNode(n.url);
  }

  /**
   * A failure that may mean a new head: look for it before the next attempt. `hint` is a head
   * the failing node named (CHAIN_NOT_HEAD's `details.head`), added to the nodes to ask;
   * `epoch` the epoch at which it refused (CHAIN_NOT_HEAD's `details.epoch`).
   */
  suspect(self: string, hint?: string, epoch?: number): void {
    this.pending = true;
    this.view ??= { epoch: 0, nodes: [self] };
    if (hint) this.addNode(hint);
    this.refusedAt = epoch !== undefined && Number.isSafeInteger(epoch) ? { node: self, epoch } : undefined;
  }

  /** Reads /api/cluster from the write node: best effort (a single PS answers 404). */
  async refresh(node: string): Promise<void> {
    try {
      this.absorb(await fetchClusterInfo(this.opts.fetch, node, this.opts.readTimeoutMs ?? 2000), node);
    } catch (err) {
      // A 404 is a single PS: nothing to learn, now or later. Anything else (a timeout, a refused
      // connection, a node not ready): not known yet, read again on the next join or report.
      if (err instanceof TabswarmError && err.code === 'WORKER_DISCONNECTED' && err.details.code === 404) this.settled = true;
    }
  }

  /**
   * The head to write to, after a failure of `current`: the head of the highest epoch any node
   * reports, or of the next epoch if that is still `current`. Undefined when no node names one.
   */
  async locate(current: string): Promise<string | undefined> {
    const known = this.view;
    const refused = this.refusedAt;
    this.pending = false;
    this.refusedAt = undefined;
    if (!known) return undefined;
    const askMs = this.opts.askTimeoutMs ?? 1500;
    const learn = (infos: ClusterInfo[]): ClusterInfo | undefined => {
      let best: ClusterInfo | undefined;
      for (const c of infos) if (c.head && (!best || c.epoch > best.epoch)) best = c;
      if (best) this.absorb(best, current);
      return best;
    };
    const asked = [...known.nodes];
    const settled = await Promise.allSettled(asked.map((n) => fetchClusterInfo(this.opts.fetch, n, askMs)));
    const silent = new Set(asked.filter((_, i) => settled[i]!.status === 'rejected'));
    let best = learn(settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])));
    const head = best?.head ? nodeUrl(best.head) : undefined;
    // Still the node that failed, unless it refused at an older epoch than the one naming it now.
    const stale = head === nodeUrl(current) && !(refused && refused.node === current && best!.epoch > refused.epoch);
    if (!best || !head || stale || silent.has(head)) {
      const epoch = best?.epoch ?? known.epoch;
      const wait = { after: epoch, waitMs: this.opts.waitMs ?? 4000 };
      const waitTimeout = this.opts.waitTimeoutMs ?? 5000;
      const next = await Promise.any(
        known.nodes.filter((n) => n !== current).map((n) => fetchClusterInfo(this.opts.fetch, n, waitTimeout, wait).then((c) => (c.epoch > epoch && c.head ? c : Promise.reject(new Error('no new head'))))),
      ).catch(() => undefined);
      best = (next && learn([next])) ?? best;
    }
    return best?.head ?? undefined;
  }

  private addNode(text: string): void {
    const url = nodeUrl(text);
    const nodes = this.view!.nodes;
    if (url && !nodes.includes(url) && nodes.length < MAX_NODES) nodes.push(url);
  }
}
