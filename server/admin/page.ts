/**
 * `GET /admin`: the console page (public/admin.html, whose script public/admin/console.js is
 * the esbuild bundle of public/admin/console.ts with uPlot). The page is public and holds no
 * data: it asks for the admin token and sends it on every /api/admin/* call.
 */
import type { FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PUBLIC_DIR } from '../plugins/static.ts';

export async function adminPageRoute(app: FastifyInstance): Promise<void> {
  app.get('/admin', async (_request, reply) => {
    const html = await readFile(join(PUBLIC_DIR, 'admin.html'), 'utf8');
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(html);
  });
}
