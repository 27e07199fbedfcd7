/**
 * A page that runs the Trainer suite (client/trainer-suite.ts) in Chromium, for the webgl and
 * webgpu cases of test/browser.test.ts. The suite is bundled here with esbuild, in memory (it is
 * not part of the worker page, public/app.js), and served from 127.0.0.1: WebGPU needs a secure
 * context, which localhost is and a file: or about: page may not be.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright';
import type { MnistSample } from '../client/trainer-suite.ts';

/** The page's entry: the suite and the backends it needs, on window for page.evaluate. */
const ENTRY = `
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { trainerSuite } from './client/trainer-suite.ts';
let sample;
window.trainerSuite = {
  load(pixels, labels) { sample = { pixels: Uint8Array.from(pixels), labels: Uint8Array.from(labels) }; },
  run(backend, name) {
    const found = trainerSuite(backend).find((c) => c.name === name);
    if (!found) throw new Error('no trainer case ' + name + ' on ' + backend);
    return found.run(tf, sample);
  },
};
`;

export interface TrainerPage {
  readonly page: Page;
  /** Runs one case of the suite on `backend` in the page; resolves to its measurements. */
  run(backend: string, name: string): Promise<string>;
  close(): Promise<void>;
}

async function bundle(): Promise<string> {
  const out = await build({
    stdin: { contents: ENTRY, resolveDir: fileURLToPath(new URL('..', import.meta.url)), loader: 'ts', sourcefile: 'trainer-suite-page.ts' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'warning',
    // As in scripts/build.mjs: tfjs-backend-wasm names Node built-ins behind runtime checks.
    external: ['fs', 'path', 'worker_threads', 'perf_hooks', 'os', 'crypto'],
  });
  return out.outputFiles[0]!.text;
}

function serve(script: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/suite.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>trainer suite</title><script type="module" src="/suite.js"></script>');
    else res.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** Opens the suite page in `browser` and hands it the MNIST sample. Closes its server on close(). */
export async function openTrainerPage(browser: Browser, sample: MnistSample): Promise<TrainerPage> {
  const server = await serve(await bundle());
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.on('pageerror', (err) => console.error(`trainer suite page error: ${err.message}`));
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    await page.waitForFunction(() => 'trainerSuite' in window, undefined, { timeout: 30_000 });
    await page.evaluate(([p, l]) => (window as unknown as { trainerSuite: { load(p: number[], l: number[]): void } }).trainerSuite.load(p, l), [Array.from(sample.pixels), Array.from(sample.labels)] as const);
    return {
      page,
      run: (backend, name) => page.evaluate(([b, n]) => (window as unknown as { trainerSuite: { run(b: string, n: string): Promise<string> } }).trainerSuite.run(b, n), [backend, name] as const),
      close: async () => {
        await context.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  } catch (err) {
    await context.close();
    server.close();
    throw err;
  }
}
