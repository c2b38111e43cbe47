/**
 * Coverage says whether the budget was enough: a budget too small to reach every branch that
 * applies is INCONCLUSIVE (exit 4) unless --allow-unhit. That the default gate (seed 1, 100 runs
 * per platform, consumers correct,i915-fixed) reaches every branch and lifecycle cell that applies,
 * and that the default gate with i915 FAILs naming it, is checked on the README's own commands in
 * ../packaging/quickstart.test.ts (they are the same two gates). Which columns apply where is
 * written out in helpers.ts (applicable), not imported.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TmpDirs, cli, parseTable } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

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
