/**
 * The worker page (public/, with the esbuild bundle of client/) and the tfjs-wasm binaries the
 * page's wasm backend loads from /wasm/.
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PUBLIC_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'public');

export async function staticPlugin(app: FastifyInstance): Promise<void> {
  if (!existsSync(join(PUBLIC_DIR, 'app.js'))) {
    app.log.warn(`${join(PUBLIC_DIR, 'app.js')} is missing: run \`npm run build\` to bundle the worker page`);
  }
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/' });
  const require = createRequire(import.meta.url);
  const wasmDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  await app.register(fastifyStatic, { root: wasmDir, prefix: '/wasm/', decorateReply: false, allowedPath: (path) => path.endsWith('.wasm') });
}
