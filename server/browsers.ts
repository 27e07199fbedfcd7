/**
 * Headless Chromium worker tabs through Playwright, using Debian's /usr/bin/chromium (never a
 * downloaded browser). Used by `npm start` (--workers N) and by the browser tests.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright';

export const CHROMIUM_PATH = process.env.TABSWARM_CHROMIUM ?? '/usr/bin/chromium';

/**
 * The flags this machine's headless Chromium needs. `webgpu: true` forces WebGPU onto
 * SwiftShader (tests that need WebGPU on a machine without a GPU); `'native'` enables WebGPU on
 * whatever adapter Chromium finds (a real GPU, or none), so that the `auto` backend's race
 * (client/backend.ts) can pick WebGPU where it is really faster.
 */
export function chromiumArgs(opts: { webgpu?: boolean | 'native' } = {}): string[] {
  const args = ['--headless=new', '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];
  if (opts.webgpu === true) args.push('--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader');
  else if (opts.webgpu === 'native') args.push('--enable-unsafe-webgpu', '--enable-features=Vulkan');
  return args;
}

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export async function launchChromium(opts: { webgpu?: boolean | 'native' } = {}): Promise<Browser> {
  if (!chromiumAvailable()) {
    throw new Error(`launchChromium: no browser at ${CHROMIUM_PATH}; install Debian's chromium (scripts/install-system-deps.sh) or set TABSWARM_CHROMIUM`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: chromiumArgs(opts) });
}

export interface WorkerTabs {
  readonly browser: Browser;
  readonly pages: Page[];
  close(): Promise<void>;
}

/** Opens `count` worker tabs on the join URL, each in its own context (its own IndexedDB). */
export async function launchWorkerTabs(opts: { url: string; count: number; backend?: string; onConsole?: (tab: number, text: string) => void }): Promise<WorkerTabs> {
  const backend = opts.backend ?? 'auto';
  const browser = await launchChromium({ webgpu: backend === 'webgpu' ? true : backend === 'auto' ? 'native' : false });
  const pages: Page[] = [];
  for (let i = 0; i < opts.count; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    if (opts.onConsole) page.on('console', (msg) => opts.onConsole!(i, msg.text()));
    const url = new URL(opts.url);
    url.searchParams.set('backend', backend);
    await page.goto(url.toString());
    pages.push(page);
  }
  return { browser, pages, close: () => browser.close() };
}
