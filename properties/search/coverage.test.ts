/**
 * Coverage says whether the budget was enough. The default gate (seed 1, 100 runs per platform,
 * consumers correct,i915-fixed) must reach every branch that can occur on each platform and every
 * lifecycle cell (direction x trusted/untrusted x single/sg x sync kind) on each mixed-workload
 * platform; a budget too small to do so is INCONCLUSIVE (exit 4) unless --allow-unhit. Which
 * columns apply where is written out in helpers.ts (applicable), not imported.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PLATFORM_MATRIX } from '../../harness/property.js';
import { LIFECYCLE_ROWS, TmpDirs, applicable, cli, expectCoverage, parseLifecycle, parseTable, type CoverageShape } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

function shape(name: string): CoverageShape {
  const np = PLATFORM_MATRIX.find((x) => x.name === name)!;
  const p = np.platform;
  return { superpages: p.superpages.length > 0, cachingMode: p.cachingMode, strict: p.strict, tight32: np.tight32 === true, exhaust: np.exhaust === true };
}

describe('the default gate reaches every branch and lifecycle cell that applies', () => {
  it('gate --consumers correct,i915-fixed (default budget): PASS, no applicable column at 0', async () => {
    const r = await cli(['gate', '--consumers', 'correct,i915-fixed', '--corpus', tmp.fresh('cov')]);
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(r.out[r.out.length - 1]!.startsWith('verdict: PASS')).toBe(true);
    expect(r.out[r.out.length - 1]).not.toContain('unreached');
    const rows = parseTable(r.out);
    expect(rows.map((x) => x.platform)).toEqual(['qemu-strict', 'lazy-2cpu', 'caching-mode', 'aw57-forcedac', 'tight32', 'exhaust-1cpu', 'exhaust-2cpu']);
    for (const row of rows) {
      expect(row.runs).toBe(100);
      expectCoverage(row.coverage, 100, shape(row.platform), true);
      // the allowlisted counts are part of the divergences counted
      expect(row.allowlisted).toBeLessThanOrEqual(row.divergences);
    }
    const life = parseLifecycle(r.out);
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
  }, 240_000);
});

describe('the default gate, as the README runs it first, finds the i915 blocker', () => {
  it('gate (consumers correct,i915, default budget): FAIL naming the i915 consumer, exit 1', async () => {
    const r = await cli(['gate', '--corpus', tmp.fresh('cov')]);
    expect(r.code, r.out.join('\n')).toBe(1);
    expect(r.out).toContain('  consumer that broke equivalence: i915');
    expect(r.out[r.out.length - 1]!.startsWith('verdict: FAIL')).toBe(true);
  }, 240_000);
});

describe('a budget that cannot vouch says so', () => {
  it('one run on exhaust-1cpu: INCONCLUSIVE, exit 4, naming the unreached branches', async () => {
    const r = await cli(['gate', '--runs', '1', '--seed', '1', '--platforms', 'exhaust-1cpu', '--consumers', 'correct', '--corpus', tmp.fresh('cov')]);
    expect(r.code, r.out.join('\n')).toBe(4);
    const v = r.out.findIndex((l) => l.startsWith('verdict: INCONCLUSIVE'));
    expect(v).toBeGreaterThan(0);
    expect(r.out[v + 1]).toMatch(/^ {2}exhaust-1cpu: .*depot-flush/);
    const allowed = await cli(['gate', '--allow-unhit', '--runs', '1', '--seed', '1', '--platforms', 'exhaust-1cpu', '--consumers', 'correct', '--corpus', tmp.fresh('cov')]);
    expect(allowed.code).toBe(0);
    expect(allowed.out[allowed.out.length - 1]).toMatch(/^verdict: PASS .*unreached branches allowed: exhaust-1cpu: /);
  });

  it('a divergence outranks an unreached branch: FAIL, exit 1', async () => {
    const r = await cli(['gate', '--runs', '25', '--seed', '2', '--platforms', 'qemu-strict', '--consumers', 'correct', '--broken', 'noIotlbSync', '--corpus', tmp.fresh('cov')]);
    expect(r.code).toBe(1);
    expect(r.out.some((l) => l.startsWith('verdict: FAIL'))).toBe(true);
  });
});

describe('the divergence column counts only the kinds the search checks', () => {
  it('--no-trace: fewer divergences counted (the trace ones), the same runs and steps', async () => {
    const base = ['--allow-unhit', '--runs', '50', '--seed', '5', '--platforms', 'qemu-strict', '--consumers', 'correct,i915-fixed'];
    const on = parseTable((await cli(['gate', ...base, '--corpus', tmp.fresh('cov')])).out)[0]!;
    const off = parseTable((await cli(['gate', ...base, '--no-trace', '--corpus', tmp.fresh('cov')])).out)[0]!;
    expect([off.runs, off.steps]).toEqual([on.runs, on.steps]);
    expect(off.divergences).toBeLessThan(on.divergences);
    expect(off.allowlisted).toBeLessThan(on.allowlisted);
  });
});
