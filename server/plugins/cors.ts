/**
 * Cross-origin access to the worker API. The PS's own origin needs nothing (same-origin
 * requests carry no CORS check). Other origins are allowed only when named by --cors-origin
 * (or `*`), and on a chain node the chain's own nodes: a worker page loaded from one node
 * writes to the head, another origin. The admin API never answers cross-origin. The API
 * authenticates with bearer tokens, never cookies, so credentials are never allowed.
 */
import type { FastifyInstance } from 'fastify';

export interface CorsOptions {
  /** The --cors-origin text: a comma list of origins, or `*`. */
  readonly corsOrigin: string;
  /** On a chain node: the current nodes' base URLs. */
  readonly peers?: () => readonly string[];
}

export async function corsPlugin(app: FastifyInstance, o: CorsOptions): Promise<void> {
  const listed = new Set(o.corsOrigin.split(',').map((s) => s.trim().replace(/\/$/, '')).filter(Boolean));
  const any = listed.has('*');
  if (!any && listed.size === 0 && !o.peers) return;
  const allowed = (origin: string): boolean => {
    if (any || listed.has(origin)) return true;
    for (const url of o.peers?.() ?? []) {
      try {
        if (new URL(url).origin === origin) return true;
      } catch {
        // a node URL that does not parse allows nothing
      }
    }
    return false;
  };
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
