/** Helpers of the mesh tests: reading a worker tab's mesh status and weights, and the spread of a set of workers. */
import type { Browser, Page } from 'playwright';
import type { WorkerStatus } from '../client/loop.ts';
import type { MeshStatus } from '../client/mesh/index.ts';

export interface TabView {
  status?: WorkerStatus;
  mesh?: MeshStatus;
}

/** Opens `n` worker tabs on the cpu backend, each in its own browser context (its own storage and worker identity). */
export async function openTabs(browser: Browser, url: string, n: number): Promise<Page[]> {
  const pages: Page[] = [];
  for (let i = 0; i < n; i++) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(new URL('/?backend=cpu', url).toString());
    pages.push(page);
  }
  return pages;
}

export const view = async (page: Page): Promise<TabView> =>
  page.evaluate(() => {
    const t = (window as unknown as { tabswarm: TabView }).tabswarm;
    return { status: t.status, mesh: t.mesh };
  });

export async function weightsOf(page: Page): Promise<Float32Array> {
  const b64 = await page.evaluate(() => (window as unknown as { tabswarm: { weights: () => string | undefined } }).tabswarm.weights());
  if (!b64) throw new Error('the tab holds no weights');
  const bytes = Buffer.from(b64, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Mean pairwise L2 distance between the workers' weights. */
export function spread(models: Float32Array[]): number {
  let sum = 0;
  let pairs = 0;
  for (let a = 0; a < models.length; a++) {
    for (let b = a + 1; b < models.length; b++) {
      let d = 0;
      for (let i = 0; i < models[a]!.length; i++) d += (models[a]![i]! - models[b]![i]!) ** 2;
      sum += Math.sqrt(d);
      pairs += 1;
    }
  }
  return sum / pairs;
}
