// Whether dist/ still matches the TypeScript sources of a development checkout. Plain JS on
// purpose: it runs before anything compiled exists. An installed tarball has no .ts sources, so
// there is nothing to compare and nothing is ever stale there.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The folders whose compiled code the CLI runs (what dist/harness/cli.js imports, transitively). */
export const RUNTIME_DIRS = ['vtd', 'kernel', 'intel-common', 'platform', 'legacy-intel', 'dma-iommu', 'harness', 'reports', 'testbench'];

/** Whether `name` is a source file tsc compiles into a runtime .js (tests and declarations are not). */
function isRuntimeSource(name) {
  return name.endsWith('.ts') && !name.endsWith('.d.ts') && !name.endsWith('.test.ts');
}

/** mtime in ms, or undefined when the file does not exist. */
function mtime(file) {
  return statSync(file, { throwIfNoEntry: false })?.mtimeMs;
}

/**
 * The runtime .ts files under `root` (paths relative to it, '/'-separated, sorted) that are newer
 * than their dist/<same path>.js or have no .js at all. Empty when there are no sources.
 */
export function staleSources(root) {
  const stale = [];
  const walk = (rel) => {
    let entries;
    try {
      entries = readdirSync(join(root, rel), { withFileTypes: true });
    } catch {
      return; // a folder that is not there has nothing to compile
    }
    for (const e of entries) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        walk(child);
      } else if (e.isFile() && isRuntimeSource(e.name)) {
        const src = mtime(join(root, child));
        const out = mtime(join(root, 'dist', `${child.slice(0, -'.ts'.length)}.js`));
        if (src !== undefined && (out === undefined || src > out)) stale.push(child);
      }
    }
  };
  for (const dir of RUNTIME_DIRS) walk(dir);
  return stale.sort();
}
