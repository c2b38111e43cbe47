/**
 * `npm run bench`: every figure of the project, one line each, then all of them as one JSON
 * object on the last line. Measured in the node the CLI runs in (node-flags.ts).
 */
import { benchCliStart } from './cli-start.js';
import { benchDifferential } from './differential.js';
import { benchIova } from './kernel.js';
import { benchPaths } from './paths.js';
import { benchSearch } from './search.js';
import { benchVtd } from './vtd.js';
import { withDmadiffFlags } from './node-flags.js';

await withDmadiffFlags(import.meta.url, async () => {
  const figures: Record<string, number> = {};
  for (const suite of [benchCliStart, benchVtd, benchIova, benchPaths, benchDifferential, benchSearch]) Object.assign(figures, await suite());
  for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(48)} ${v}`);
  console.log(JSON.stringify(figures));
});
