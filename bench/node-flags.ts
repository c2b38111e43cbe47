/** The bench measures dmadiff in the node the CLI runs in: bin/launch.js's V8 flags. */
import { fileURLToPath } from 'node:url';

type Launch = typeof import('../bin/launch.js');

/**
 * Run `measure` in a node with dmadiff's flags: this one when it has them, else `entry` (a
 * module URL) again in one started with them (it then runs `measure` there).
 */
export async function withDmadiffFlags(entry: string, measure: () => Promise<void>): Promise<void> {
  // from dist/bench/ the launcher is two folders up, where the package keeps it
  const launch = (await import(new URL('../../bin/launch.js', import.meta.url).href)) as Launch;
  if (!launch.wasRelaunched() && launch.needsFlags()) {
    launch.relaunch(fileURLToPath(entry), process.argv.slice(2), (line) => {
      process.stderr.write(`bench: ${line}\n`);
      process.exit(2);
    });
    return;
  }
  await measure();
}
