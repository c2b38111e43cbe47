/**
 * bin/freshness.js (which runtime sources are newer than dist/) and what bin/dmadiff.js does with
 * it: builds a missing dist/, rebuilds a stale one, and otherwise ends a bad state with one line
 * on stderr and exit 2 -- never a stack trace.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RUNTIME_DIRS, staleSources } from '../../bin/freshness.js';
import { REPO, describeRun, run, type Ran } from './clone.js';

const temps: string[] = [];
function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'dmadiff-fresh-'));
  temps.push(d);
  return d;
}
afterEach(() => {
  for (const d of temps.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes `root/rel`, with mtime `sec` seconds after the epoch when given. */
function put(root: string, rel: string, text = '', sec?: number): void {
  const f = join(root, rel);
  mkdirSync(dirname(f), { recursive: true });
  writeFileSync(f, text);
  if (sec !== undefined) utimesSync(f, sec, sec);
}

const T = 1_700_000_000;

describe('staleSources', () => {
  it('reports a source newer than its compiled .js, not one as old or older', () => {
    const root = temp();
    put(root, 'harness/newer.ts', '', T + 10);
    put(root, 'dist/harness/newer.js', '', T);
    put(root, 'harness/same.ts', '', T);
    put(root, 'dist/harness/same.js', '', T);
    put(root, 'vtd/older.ts', '', T);
    put(root, 'dist/vtd/older.js', '', T + 10);
    expect(staleSources(root)).toEqual(['harness/newer.ts']);
  });

  it('reports a source whose .js is missing, in nested folders too, sorted', () => {
    const root = temp();
    put(root, 'kernel/sub/deep.ts', '', T);
    put(root, 'dma-iommu/a.ts', '', T);
    put(root, 'legacy-intel/b.ts', '', T);
    put(root, 'dist/legacy-intel/b.js', '', T);
    expect(staleSources(root)).toEqual(['dma-iommu/a.ts', 'kernel/sub/deep.ts']);
  });

  it('ignores tests, declarations and folders the CLI does not run', () => {
    const root = temp();
    put(root, 'harness/cli.test.ts', '', T + 10);
    put(root, 'harness/types.d.ts', '', T + 10);
    put(root, 'properties/x.ts', '', T + 10);
    put(root, 'bench/bench.ts', '', T + 10);
    put(root, 'harness/notes.md', '', T + 10);
    expect(staleSources(root)).toEqual([]);
  });

  it('finds nothing stale without sources (an installed package)', () => {
    const root = temp();
    expect(staleSources(root)).toEqual([]);
    put(root, 'dist/harness/cli.js', '', T);
    expect(staleSources(root)).toEqual([]);
  });

  it('covers every folder dist/harness/cli.js loads', () => {
    // the top folders of every module the compiled CLI imports, followed from its entry
    const seen = new Set<string>();
    const folders = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      folders.add(relative(join(REPO, 'dist'), file).split(sep)[0]!);
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+\.js)'/g)) visit(join(dirname(file), m[1]!));
    };
    visit(join(REPO, 'dist', 'harness', 'cli.js'));
    expect(seen.size).toBeGreaterThan(20);
    expect([...folders].sort()).toEqual([...RUNTIME_DIRS].sort());
  });

});

/** bin/dmadiff.js and the files it imports copied to `root/bin`, with the repository's package.json. */
function binCopy(root: string): void {
  mkdirSync(join(root, 'bin'), { recursive: true });
  for (const f of ['dmadiff.js', 'freshness.js', 'launch.js']) copyFileSync(join(REPO, 'bin', f), join(root, 'bin', f));
  copyFileSync(join(REPO, 'package.json'), join(root, 'package.json'));
}

function dmadiff(root: string, args: readonly string[]): Ran {
  return run(process.execPath, [join(root, 'bin', 'dmadiff.js'), ...args], root);
}

const STACK = /^\s+at\s/m;
const MISSING = 'dmadiff: dist/ is missing and cannot be built here: run npm run build\n';
const BUILDING = 'dmadiff: dist/ is missing; building it (npm run build)\n';
const REBUILDING = 'dmadiff: sources changed since the last build; rebuilding (npm run build)\n';
const FAILED = 'dmadiff: the build failed; run npm run build to see the errors';

describe('bin/dmadiff.js without a usable dist/', () => {
  it('a copy of the package with its sources but without dist/ and typescript: one line, exit 2', () => {
    const root = temp();
    binCopy(root);
    for (const d of [...RUNTIME_DIRS, 'tsconfig.json', 'README.md']) cpSync(join(REPO, d), join(root, d), { recursive: true });
    const r = dmadiff(root, ['--help']);
    expect(r.code, describeRun('dmadiff --help', r)).toBe(2);
    expect(r.stderr).toBe(MISSING);
    expect(r.stdout).toBe('');
  });

  it('a package without sources or dist/: one line, exit 2', () => {
    const root = temp();
    binCopy(root);
    const r = dmadiff(root, ['gate']);
    expect(r.code, describeRun('dmadiff gate', r)).toBe(2);
    expect(r.stderr).toBe(MISSING);
  });

  it('a dist/ whose imports cannot be loaded: one line, exit 2', () => {
    const root = temp();
    binCopy(root);
    put(root, 'dist/harness/cli.js', "import 'dmadiff-test-no-such-package';\nexport async function main() { return 0; }\n");
    const r = dmadiff(root, ['--help']);
    expect(r.code, describeRun('dmadiff --help', r)).toBe(2);
    expect(r.stderr).toMatch(/^dmadiff: cannot load the CLI: .*dmadiff-test-no-such-package.*\n$/);
    expect(r.stderr).not.toMatch(STACK);
  });

  it('a CLI that throws: one line, exit 3', () => {
    const root = temp();
    binCopy(root);
    put(root, 'dist/harness/cli.js', "export async function main() { throw new Error('boom\\nmore'); }\n");
    const r = dmadiff(root, ['gate']);
    expect(r.code, describeRun('dmadiff gate', r)).toBe(3);
    expect(r.stderr).toBe('dmadiff: internal error: boom\n');
  });
});

/**
 * A miniature checkout: bin/, a tsconfig, harness/cli.ts and harness/util.ts, and the
 * repository's node_modules (for typescript). Small enough that tsc takes about a second.
 */
function fakeCheckout(): string {
  const root = temp();
  binCopy(root);
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'), 'dir');
  put(
    root,
    'tsconfig.json',
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: [], strict: true, outDir: 'dist', rootDir: '.' },
      include: ['harness'],
    }),
  );
  put(
    root,
    'harness/cli.ts',
    [
      "import { greeting } from './util.js';",
      'declare const console: { log(s: string): void };',
      'export async function main(argv: readonly string[]): Promise<number> {',
      '  console.log(`${greeting} ${argv.join(" ")}`);',
      '  return 0;',
      '}',
      '',
    ].join('\n'),
  );
  put(root, 'harness/util.ts', "export const greeting: string = 'fake cli:';\n");
  return root;
}

describe('bin/dmadiff.js in a checkout with typescript', () => {
  it('builds a missing dist/, rebuilds when a source is newer, refuses a failed build every time', () => {
    const root = fakeCheckout();
    let r = dmadiff(root, ['a', 'b']);
    expect(r.code, describeRun('first run', r)).toBe(0);
    expect(r.stderr).toBe(BUILDING);
    expect(r.stdout).toBe('fake cli: a b\n');

    r = dmadiff(root, ['c']);
    expect(r.stderr, describeRun('second run', r)).toBe('');
    expect(r.stdout).toBe('fake cli: c\n');

    // util.ts edited after the last build (its .js is older)
    utimesSync(join(root, 'dist/harness/util.js'), T, T);
    r = dmadiff(root, ['d']);
    expect(r.code, describeRun('after an edit', r)).toBe(0);
    expect(r.stderr).toBe(REBUILDING);
    expect(r.stdout).toBe('fake cli: d\n');

    put(root, 'harness/util.ts', "export const greeting: number = 'not a number';\n");
    for (const attempt of ['first', 'second']) {
      r = dmadiff(root, ['e']);
      expect(r.code, describeRun(`${attempt} run with a type error`, r)).toBe(2);
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines[0]).toBe(REBUILDING.trimEnd());
      expect(r.stderr).toMatch(/error TS2322/);
      expect(lines.at(-1)).toBe(FAILED);
      expect(r.stderr).not.toMatch(STACK);
      // the CLI did not run the old build
      expect(r.stdout).toBe('');
    }

    put(root, 'harness/util.ts', "export const greeting: string = 'fixed:';\n");
    r = dmadiff(root, ['f']);
    expect(r.code, describeRun('after the fix', r)).toBe(0);
    expect(r.stderr).toBe(REBUILDING);
    expect(r.stdout).toBe('fixed: f\n');
  });

  it('dmadiff processes started together build once and all run the fresh build', async () => {
    const root = fakeCheckout();
    const runs = await Promise.all(
      [1, 2, 3].map(
        (i) =>
          new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const c = spawn(process.execPath, [join(root, 'bin', 'dmadiff.js'), String(i)], { cwd: root, env: { ...process.env, CI: '1' } });
            let out = '';
            let err = '';
            c.stdout.on('data', (b: Buffer) => (out += b.toString()));
            c.stderr.on('data', (b: Buffer) => (err += b.toString()));
            c.on('close', (code) => resolve({ code, out, err }));
          }),
      ),
    );
    runs.forEach((r, i) => {
      expect(r.code, r.err).toBe(0);
      expect(r.out).toBe(`fake cli: ${i + 1}\n`);
    });
    expect(runs.map((r) => r.err).join('')).toBe(BUILDING);
  });
});
