/**
 * The README's quick start, end to end, on a fresh clone of this repository (with the working
 * tree's uncommitted changes laid over it): `npm ci`, then `npx dmadiff gate` (FAIL: the unfixed
 * i915 walk faults on the generic path), then `npx dmadiff gate --consumers correct,i915-fixed`
 * (PASS). Then the package as a user gets it: `npm pack`, installed into an empty project,
 * where `npx dmadiff --version` and a short gate must work without sources or typescript.
 *
 * The two gates are the default budget (seed 1, 100 runs per platform), so this file also holds
 * what the suite asks of them: the first names the i915 consumer; the second reaches every branch
 * and lifecycle cell that applies (coverage says the budget was enough), and passes over the
 * first one's corpus entries as not applicable rather than replaying them.
 *
 * Slow (a clone, two npm installs, two full gates); installs prefer npm's cache.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIFECYCLE_ROWS, applicable, coverageShape as shape, expectCoverage, parseLifecycle, parseTable } from '../search/helpers.js';
import { cloneWorkingTree, describeRun, run, type Ran } from './clone.js';


const SLOW = 600_000;
const NPM_QUIET = ['--prefer-offline', '--no-audit', '--no-fund'];

// npx must run the project's own dmadiff, never fetch a same-named package from the registry
const LOCAL_ONLY = { npm_config_yes: 'false' };

const temps: string[] = [];
const timings: Record<string, number> = {};
let clone = '';

function timed(label: string, r: Ran): Ran {
  timings[label] = r.ms;
  return r;
}

function npx(cwd: string, args: readonly string[], label: string): Ran {
  expect(existsSync(join(cwd, 'node_modules', '.bin', 'dmadiff')), `${cwd}/node_modules/.bin/dmadiff`).toBe(true);
  return timed(label, run('npx', ['dmadiff', ...args], cwd, LOCAL_ONLY));
}

/** Every file under `dir`, relative to it. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)));
}

describe('quick start on a fresh clone', () => {
  beforeAll(() => {
    const parent = mkdtempSync(join(tmpdir(), 'dmadiff-quickstart-'));
    temps.push(parent);
    clone = join(parent, 'dmadiff');
    const t = Date.now();
    cloneWorkingTree(clone);
    timings['clone'] = Date.now() - t;
    const ci = timed('npm ci', run('npm', ['ci', ...NPM_QUIET], clone));
    expect(ci.code, describeRun('npm ci', ci)).toBe(0);
  }, SLOW);

  afterAll(() => {
    for (const d of temps) rmSync(d, { recursive: true, force: true });
    console.log(`quickstart timings (ms): ${JSON.stringify(timings)}`);
  });

  it(
    'npx dmadiff gate fails: the unfixed i915 walk',
    () => {
      const r = npx(clone, ['gate'], 'gate (default)');
      const why = describeRun('npx dmadiff gate', r);
      expect(r.code, why).toBe(1);
      expect(r.stdout, why).toContain('verdict: FAIL');
      expect(r.stdout, why).toContain('\n  consumer that broke equivalence: i915\n');
      expect(r.stdout.split('\n')[0], why).toBe('corpus .dmadiff/corpus: 0 entries: 0 still failing, 0 fixed, 0 not applicable, 0 unreadable');
    },
    SLOW,
  );

  it(
    'npx dmadiff gate --consumers correct,i915-fixed passes',
    () => {
      const r = npx(clone, ['gate', '--consumers', 'correct,i915-fixed'], 'gate (fixed)');
      const why = describeRun('npx dmadiff gate --consumers correct,i915-fixed', r);
      expect(r.code, why).toBe(0);
      const out = r.stdout.trimEnd().split('\n');
      expect(out[out.length - 1], why).toMatch(/^verdict: PASS/);
      expect(out[out.length - 1], why).not.toContain('unreached');
      // the first gate's failures are in the corpus, and do not apply to these consumers
      const stored = readdirSync(join(clone, '.dmadiff', 'corpus')).filter((n) => !n.endsWith('.scenario.json'));
      expect(stored.length, why).toBeGreaterThan(0);
      expect(out[0], why).toBe(`corpus .dmadiff/corpus: ${stored.length} entries: 0 still failing, 0 fixed, ${stored.length} not applicable, 0 unreadable`);
      for (const n of stored) expect(out, why).toContain(`corpus .dmadiff/corpus/${n}: not applicable: needs consumer i915, not in --consumers correct,i915-fixed`);
      // the default budget reaches every branch and lifecycle cell that applies
      const rows = parseTable(out);
      expect(rows.map((x) => x.platform)).toEqual(['qemu-strict', 'lazy-2cpu', 'caching-mode', 'aw57-forcedac', 'tight32', 'exhaust-1cpu', 'exhaust-2cpu']);
      for (const row of rows) {
        expect(row.runs).toBe(100);
        expectCoverage(row.coverage, 100, shape(row.platform), true);
        expect(row.allowlisted).toBeLessThanOrEqual(row.divergences);
      }
      const life = parseLifecycle(out);
      expect([...life.keys()]).toEqual(LIFECYCLE_ROWS);
      for (const [cell, byPlatform] of life) {
        for (const [platform, n] of byPlatform) {
          if (shape(platform).exhaust) expect(n, `${cell} on ${platform}`).toBe('n/a');
          else expect(n, `${cell} on ${platform}`).toBeGreaterThan(0);
        }
      }
      // the exhaustion platforms meet the retry, the depot flush and a legacy-only failure
      for (const p of ['exhaust-1cpu', 'exhaust-2cpu']) {
        expect(applicable(shape(p)).has('depot-flush')).toBe(true);
        expect(rows.find((x) => x.platform === p)!.allowlistedBy.get('D4') ?? 0).toBeGreaterThan(0);
      }
    },
    SLOW,
  );

  it(
    'the packed tarball installs into an empty project and runs there',
    () => {
      const version = (JSON.parse(readFileSync(join(clone, 'package.json'), 'utf8')) as { version: string }).version;
      const pack = timed('npm pack', run('npm', ['pack', '--silent'], clone));
      expect(pack.code, describeRun('npm pack', pack)).toBe(0);
      const tarball = join(clone, pack.stdout.trim().split('\n').at(-1) ?? '');
      expect(existsSync(tarball), describeRun(`npm pack (no ${tarball})`, pack)).toBe(true);

      const project = mkdtempSync(join(tmpdir(), 'dmadiff-install-'));
      temps.push(project);
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'dmadiff-install-check', version: '1.0.0', private: true }));
      const install = timed('npm install tarball', run('npm', ['install', ...NPM_QUIET, tarball], project));
      expect(install.code, describeRun('npm install <tarball>', install)).toBe(0);

      // what a user gets: the compiled runtime, no sources, no tests, no typescript
      const pkg = join(project, 'node_modules', 'dmadiff');
      const shipped = files(pkg);
      expect(shipped).toContain('dist/harness/cli.js');
      expect(shipped).toContain('bin/dmadiff.js');
      expect(shipped.filter((f) => f.endsWith('.ts') || f.startsWith('dist/properties/') || f.startsWith('dist/bench/'))).toEqual([]);
      expect(existsSync(join(project, 'node_modules', 'typescript'))).toBe(false);

      const v = npx(project, ['--version'], 'installed --version');
      expect(v.code, describeRun('npx dmadiff --version', v)).toBe(0);
      expect(v.stdout.trim(), describeRun('npx dmadiff --version', v)).toMatch(new RegExp(`(^|\\s)v?${version.replaceAll('.', '\\.')}(?![\\w.-])`));
      expect(v.stderr).toBe('');

      const args = ['gate', '--runs', '25', '--platforms', 'qemu-strict', '--consumers', 'correct,i915-fixed', '--allow-unhit'];
      const g = npx(project, args, 'installed short gate');
      expect(g.code, describeRun(`npx dmadiff ${args.join(' ')}`, g)).toBe(0);
      expect(g.stdout, describeRun(`npx dmadiff ${args.join(' ')}`, g)).toContain('verdict: PASS');
    },
    SLOW,
  );
});
