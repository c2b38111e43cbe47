/**
 * What every CLI start pays before any command runs: bin/dmadiff.js asks bin/freshness.js which
 * runtime sources are newer than dist/ (a stat of each). Measured on this checkout, the mean of
 * ten calls after one to warm the file-system cache.
 */
import { fileURLToPath } from 'node:url';

type Freshness = typeof import('../bin/freshness.js');

export async function benchCliStart(): Promise<Record<string, number>> {
  // bench runs from dist/bench/: the checkout is two folders up, bin/ is not compiled
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const { staleSources } = (await import(new URL('../../bin/freshness.js', import.meta.url).href)) as Freshness;
  staleSources(root);
  const t = performance.now();
  for (let i = 0; i < 10; i++) staleSources(root);
  return { freshness_check_ms: Math.round(((performance.now() - t) / 10) * 10) / 10 };
}
