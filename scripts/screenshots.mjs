#!/usr/bin/env node
/**
 * Takes the README's screenshots with Playwright: runs `tabswarm start` with its defaults (two
 * headless worker tabs), waits for 90% test accuracy (or 90 s), then photographs the worker page
 * on a phone-sized viewport and the admin console on a desktop one, into docs/img/. Uses the
 * system Chromium (/usr/bin/chromium); it never downloads a browser.
 *
 *   flock /tmp/tabswarm-heavy.lock node scripts/screenshots.mjs
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';

const root = fileURLToPath(new URL('..', import.meta.url));
const token = 'screenshot-token-0123456789abcdef';
const ps = spawn(process.execPath, ['bin/tabswarm.mjs', 'start', '--port', '0', '--admin-token', token, '--log-format', 'json'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
ps.stdout.setEncoding('utf8').on('data', (c) => { out += c; });
const until = async (check, what, ms) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
};
let browser;
try {
  const url = (await until(() => / ready; join at (\S+)/.exec(out), 'the ready line', 60_000))[1];
  const accuracy = async () => (await (await fetch(new URL('/api/series', url))).json()).points.at(-1)?.accuracy ?? 0;
  await until(async () => (await accuracy()) >= 0.9, '90% accuracy', 90_000).catch((err) => console.warn(err.message));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless=new', '--no-sandbox'] });
  const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true })).newPage();
  await phone.goto(url);
  await until(() => phone.evaluate(() => (window.tabswarm.status?.steps ?? 0) >= 30), 'the page to train 30 steps', 60_000);
  await phone.screenshot({ path: 'docs/img/worker-page.png' });
  const admin = await (await browser.newContext({ viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1 })).newPage();
  await admin.goto(new URL('/admin', url).toString());
  await admin.fill('#token', token);
  await admin.click('#login-button');
  await until(() => admin.evaluate(() => window.tabswarmConsole.samples.length > 3), 'the console to fill', 30_000);
  await admin.waitForTimeout(1500); // one more poll, so the charts hold the latest samples
  await admin.screenshot({ path: 'docs/img/console.png' });
  console.log(`screenshots written to docs/img/ at accuracy ${(await accuracy()).toFixed(3)}`);
} finally {
  await browser?.close();
  ps.kill('SIGTERM');
}
