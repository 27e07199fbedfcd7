// Bundles the worker page (client/main.ts) into public/app.js with esbuild.
import { build } from 'esbuild';

const started = Date.now();
await build({
  entryPoints: ['client/main.ts'],
  outfile: 'public/app.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning',
  // tfjs-backend-wasm references Node built-ins behind runtime checks; the page never takes those paths.
  external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
});
console.log(`built public/app.js in ${Date.now() - started} ms`);
