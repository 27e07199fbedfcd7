// Bundles the worker page (client/main.ts, with uPlot) into public/app.js + .css, and the admin console
// (public/admin/src/console.ts, with uPlot) into public/admin/console.js + .css, with esbuild.
import { build } from 'esbuild';

const started = Date.now();
const page = { bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true, sourcemap: true, logLevel: 'warning' };
await build({
  ...page,
  entryPoints: ['client/main.ts'],
  outfile: 'public/app.js',
  // tfjs-backend-wasm references Node built-ins behind runtime checks; the page never takes those paths.
  external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
});
await build({ ...page, entryPoints: ['public/admin/src/console.ts'], outfile: 'public/admin/console.js' });
console.log(`built public/app.js and public/admin/console.js in ${Date.now() - started} ms`);
