/**
 * The admin bearer-token check, shared by the PS's admin API and the cluster supervisor's
 * console: every request under the scope it is added to must carry `Authorization: Bearer
 * <token>`; anything else is refused with ADMIN_UNAUTHORIZED (401 JSON) and logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TabswarmError } from '../../shared/errors.ts';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The token from the option, else TABSWARM_ADMIN_TOKEN, else a fresh random one. */
export function resolveAdminToken(option: string | undefined, env = process.env): { token: string; generated: boolean } {
  const given = option ?? env.TABSWARM_ADMIN_TOKEN;
  if (given) return { token: given, generated: false };
  return { token: randomBytes(18).toString('base64url'), generated: true };
}

/** The onRequest hook: refuses (ADMIN_UNAUTHORIZED, logged) a request without the token. */
export function adminTokenHook(token: string): (request: FastifyRequest) => Promise<void> {
  const want = digest(token);
  return async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    const given = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
    // Comparing digests keeps the comparison constant-time whatever the given length.
    const reason = given === undefined ? 'no Authorization: Bearer token' : timingSafeEqual(digest(given), want) ? undefined : 'the token is not the admin token';
    if (!reason) return;
    const err = new TabswarmError('ADMIN_UNAUTHORIZED', { reason });
    request.log.warn({ ip: request.ip, method: request.method, url: request.url, reason }, 'admin call refused');
    throw err;
  };
}

/**
 * Adds the token check to `app`'s scope (an encapsulated plugin: only its routes are guarded).
 * The thrown refusal reaches the server's error handler, which counts it (on a PS).
 */
export function requireAdminToken(app: FastifyInstance, token: string): void {
  app.addHook('onRequest', adminTokenHook(token));
}
