/**
 * Bad input never runs and never crashes: `dmadiff scenario FILE` on an invalid scenario exits 2
 * with exactly one line on stderr, "dmadiff: <field path>: <what is wrong>", naming the place of
 * the (only) problem, and prints nothing on stdout. A fast-check property mutates valid
 * scenarios (the two recordings and a hand-written one covering every op) in one place each
 * (this file); unit cases pin the exact path of each kind of mistake (bad-input-places.test.ts);
 * and the CLI's own usage errors (bad-input-usage.test.ts).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BASES, HAND, OPS, steps, type Json } from './bad-input-bases.js';
import { MUTATIONS, mutate } from './bad-input-mutate.js';
import { TmpFiles, cli } from './helpers.js';

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

/** a scenario file: a JSON value is serialised, a string written as is */
function fileFor(p: Json | string): string {
  return tmp.write(p);
}

describe('the bases are valid', () => {
  it.each(BASES.map((b) => [b.name, b.json] as const))('%s runs (exit 0 or 1, nothing on stderr)', async (_name, json) => {
    const r = await cli(['scenario', fileFor(json)]);
    expect([0, 1]).toContain(r.code);
    expect(r.err).toEqual([]);
  });

  it('the hand-written base uses every op', () => {
    expect(new Set(steps(HAND).map((s) => s['op']))).toEqual(new Set(OPS));
  });
});

const PROPERTY_SEED = 20240501;
const PROPERTY_RUNS = 400;
const mutationArb = fc.record({ base: fc.nat(BASES.length - 1), m: fc.constantFrom(...MUTATIONS), a: fc.nat(), b: fc.nat(), c: fc.nat() });

describe('property: one mistake anywhere gives exit 2 and one line naming its place', () => {
  it('holds for every mutation of every base', async () => {
    const arb = mutationArb;
    await fc.assert(
      fc.asyncProperty(arb, async ({ base, m, a, b, c }) => {
        const mu = mutate(BASES[base]!.json, m, a, b, c);
        fc.pre(mu !== undefined);
        const r = await cli(['scenario', fileFor(mu!.payload)]);
        const where = `${BASES[base]!.name}: ${mu!.what}`;
        expect(r.code, where).toBe(2);
        expect(r.out.filter((l) => l !== ''), where).toEqual([]);
        expect(r.err, where).toHaveLength(1);
        expect(r.err[0]!.startsWith(`dmadiff: ${mu!.path}: `), `${where}: "${r.err[0]}" should name ${mu!.path}`).toBe(true);
      }),
      { seed: PROPERTY_SEED, numRuns: PROPERTY_RUNS },
    );
  });

  it("the property's fixed-seed runs try every kind of mistake several times, on every base", () => {
    const samples = fc.sample(mutationArb, { seed: PROPERTY_SEED, numRuns: PROPERTY_RUNS });
    const applied = samples.filter((x) => mutate(BASES[x.base]!.json, x.m, x.a, x.b, x.c) !== undefined);
    for (const m of MUTATIONS) expect(applied.filter((x) => x.m === m).length, m).toBeGreaterThanOrEqual(5);
    for (let b = 0; b < BASES.length; b++) expect(applied.filter((x) => x.base === b).length).toBeGreaterThanOrEqual(50);
  });

  it('every mutation kind applies to at least one base', () => {
    for (const m of MUTATIONS) expect(BASES.some((b) => mutate(b.json, m, 1, 1, 1) !== undefined), m).toBe(true);
  });
});
