/**
 * Cross-origin access to the worker API. The PS's own origin needs nothing (same-origin
 * requests carry no CORS check). Other origins are allowed only when named by --cors-origin
 * (or `*`), and on a chain node the chain's own nodes: a worker page loaded from one node
 * writes to the head, another origin. The admin API never answers cross-origin. The API
 * authenticates with bearer tokens, never cookies, so credentials are never allowed.
 *
 * "The chain's own nodes" means every node this node has seen in a chain view, not only the
 * current one: a tab keeps the origin it was loaded from, and when that node dies the tab must
 * still reach the survivors to find the new head. Allowing only the current view refused it
 * exactly then, so a tab whose page came from a killed head trained into its buffer until that
 * node was back (about 30 s per kill in the reference experiment). The record is bounded
 * (MAX_MEMBER_ORIGINS, the oldest forgotten first) and holds only URLs that nodes of the
 * cluster registered in ZooKeeper under its ACL.
 */
import type { FastifyInstance } from 'fastify';

export interface CorsOptions {
  /** The --cors-origin text: a comma list of origins, or `*`. */
  readonly corsOrigin: string;
  /** On a chain node: the origins of the nodes it has seen in the chain. */
  readonly members?: MemberOrigins;
}

/** At most this many member origins are kept (a chain has a handful of nodes; each restart on a new port adds one). */
export const MAX_MEMBER_ORIGINS = 256;

/** The origins of every node seen in a chain view, bounded, the most recently seen kept. */
export class MemberOrigins {
  private readonly origins = new Set<string>();

  constructor(private readonly max = MAX_MEMBER_ORIGINS) {}

  /** Records the origins of a view's node URLs; a URL that does not parse is skipped. */
  note(urls: Iterable<string>): void {
    for (const url of urls) {
      let origin: string;
      try {
        origin = new URL(url).origin;
      } catch {
        continue;
      }
      if (origin === 'null') continue;
      // Delete and add again: the Set's order is then last seen, and the oldest goes first.
      this.origins.delete(origin);
      this.origins.add(origin);
      if (this.origins.size > this.max) this.origins.delete(this.origins.values().next().value!);
    }
  }

  has(origin: string): boolean {
    return this.origins.has(origin);
  }

  get size(): number {
    return this.origins.size;
  }
}

export async function corsPlugin(app: FastifyInstance, o: CorsOptions): Promise<void> {
  const listed = new Set(o.corsOrigin.split(',').map((s) => s.trim().replace(/\/$/, '')).filter(Boolean));
  const any = listed.has('*');
  if (!any && listed.size === 0 && !o.members) return;
  const allowed = (origin: string): boolean => any || listed.has(origin) || (o.members?.has(origin) ?? false);
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (!origin || !request.url.startsWith('/api/') || request.url.startsWith('/api/admin/')) return;
    if (!allowed(origin)) return;
    reply.header('access-control-allow-origin', any ? '*' : origin);
    if (!any) reply.header('vary', 'Origin');
  });
  app.options('/api/*', async (request, reply) => {
    const origin = request.headers.origin;
    if (!origin || !allowed(origin) || request.url.startsWith('/api/admin/')) return reply.code(204).send();
    return reply
      .header('access-control-allow-methods', 'GET, POST')
      .header('access-control-allow-headers', 'content-type, authorization')
      .header('access-control-max-age', '600')
      .code(204)
      .send();
  });
}

// Not encapsulated (what fastify-plugin does): the hook must see every /api/* route.
Object.assign(corsPlugin, { [Symbol.for('skip-override')]: true });
