/**
 * staleSources against a plain statement of the rule, over random layouts: a runtime source
 * (a .ts under vtd/, kernel/, legacy-intel/, dma-iommu/ or harness/, not a test and not a
 * declaration) is stale exactly when dist/ has no .js for it or its .js is older.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { RUNTIME_DIRS, staleSources } from '../../bin/freshness.js';

const T = 1_700_000_000;

const file = fc.record({
  dir: fc.constantFrom(...RUNTIME_DIRS, 'properties', 'bench', 'harness/sub', 'kernel/a/b'),
  name: fc.stringMatching(/^[a-z][a-z-]{0,7}$/),
  kind: fc.constantFrom('.ts', '.test.ts', '.d.ts', '.js'),
  /** seconds the .js is newer (+) or older (-) than the source; undefined: no .js */
  js: fc.option(fc.integer({ min: -3, max: 3 }), { nil: undefined }),
});

test.prop([fc.uniqueArray(file, { maxLength: 12, selector: (f) => `${f.dir}/${f.name}${f.kind}` })], { numRuns: 60 })(
  'reports exactly the runtime sources without an up-to-date .js',
  (files) => {
    const root = mkdtempSync(join(tmpdir(), 'dmadiff-fresh-prop-'));
    try {
      const expected: string[] = [];
      for (const f of files) {
        const rel = `${f.dir}/${f.name}${f.kind}`;
        const src = join(root, rel);
        mkdirSync(dirname(src), { recursive: true });
        writeFileSync(src, '');
        utimesSync(src, T, T);
        // where tsc would put its output (a .js in a source folder has none)
        if (f.js !== undefined && f.kind !== '.js') {
          const out = join(root, 'dist', rel.replace(/\.ts$/, '.js'));
          mkdirSync(dirname(out), { recursive: true });
          writeFileSync(out, '');
          utimesSync(out, T + f.js, T + f.js);
        }
        const runtime = RUNTIME_DIRS.includes(f.dir.split('/')[0] ?? '') && f.kind === '.ts';
        if (runtime && (f.js === undefined || f.js < 0)) expected.push(rel);
      }
      expect(staleSources(root)).toEqual(expected.sort());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);
