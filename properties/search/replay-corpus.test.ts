/**
 * Reproducing failures (DESIGN.md "Reproducing a failure"): a replay token and an exported
 * scenario file each reproduce their failure; the corpus is replayed first by every gate, an
 * unreadable entry is reported on one line, kept, and makes the exit 2 unless --ignore-corrupt;
 * a run killed between writing a corpus entry and renaming it into place leaves every earlier
 * entry intact, and an entry that still fails fails the gate with a "still failing" line.
 *
 * The kill is simulated by making node:fs renameSync throw (the temporary file is already
 * written at that point) -- exactly the window writeAtomic's temporary file protects.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { WriteError, loadCorpus, scenarioHash, storeFailure, writeAtomic } from '../../harness/search/corpus.js';
import { PLATFORM_MATRIX, replayChunk, runChunk, type SearchConfig } from '../../harness/search/property.js';
import { scenarioToJson, type Scenario } from '../../harness/workload/scenario.js';
import { decodeToken, encodeToken } from '../../harness/search/token.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { TmpDirs, cli, printedFailures, readScenarioFile, searchArgs, type PrintedFailure } from './helpers.js';

const killed = vi.hoisted(() => ({ beforeRename: false }));

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    renameSync: (from: Parameters<typeof fs.renameSync>[0], to: Parameters<typeof fs.renameSync>[1]): void => {
      if (killed.beforeRename) throw new Error('simulated kill: the process died after writing the temporary file');
      fs.renameSync(from, to);
    },
    // a killed process runs no clean-up: writeAtomic's removal of its temporary never happens
    unlinkSync: (path: Parameters<typeof fs.unlinkSync>[0]): void => {
      if (killed.beforeRename) throw new Error('simulated kill: the process is already dead');
      fs.unlinkSync(path);
    },
  };
});

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());
afterEach(() => {
  killed.beforeRename = false;
});

/** the i915 failure (qemu-strict, seed 2, 50 runs), found once for the whole file */
let i915: PrintedFailure;
let i915Corpus: string;

beforeAll(async () => {
  i915Corpus = tmp.fresh('corpus');
  const r = await cli(['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus: i915Corpus })]);
  const f = printedFailures(r.out);
  if (r.code !== 1 || f.length !== 1) throw new Error(`the i915 gate did not fail once:\n${r.out.join('\n')}`);
  i915 = f[0]!;
});

function passingGate(corpus: string): string[] {
  return ['gate', ...searchArgs({ runs: 25, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus })];
}

/** a gate whose flags every entry below applies to (all three consumers) and whose own search finds nothing (seed 1) */
function replayGate(corpus: string): string[] {
  return ['gate', ...searchArgs({ runs: 25, seed: 1, platforms: 'qemu-strict', consumers: 'correct,i915,i915-fixed', corpus })];
}

/** every file of a directory with its bytes */
function snapshot(dir: string): Map<string, string> {
  return new Map(
    readdirSync(dir)
      .sort()
      .map((n) => [n, readFileSync(join(dir, n), 'utf8')] as const),
  );
}

describe('a replay token reproduces its failure', () => {
  it('decodeToken + replayChunk give the same shrunk scenario with divergences', () => {
    const { token, cfg } = decodeToken(i915.token);
    expect(token.platform).toBe('qemu-strict');
    expect(token.consumers).toEqual(['correct', 'i915']);
    const f = replayChunk(cfg, token.seed, token.path);
    expect(f).toBeDefined();
    expect(f!.divergences.length).toBeGreaterThan(0);
    expect(f!.divergences.some((d) => d.kind === 'consumer')).toBe(true);
    expect(JSON.parse(JSON.stringify(scenarioToJson(f!.scenario), (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)))).toEqual(readScenarioFile(i915.scenario));
  });

  it('`dmadiff replay TOKEN` returns 1 and prints the divergence', async () => {
    const r = await cli(['replay', i915.token]);
    expect(r.code, r.out.join('\n')).toBe(1);
    expect(r.out.some((l) => l.includes('DIVERGENCE [consumer]'))).toBe(true);
  });

  it('property: for any chunk seed whose chunk fails (noIotlbSyncMap on caching-mode), its token replays the same scenario', () => {
    const platform = PLATFORM_MATRIX.find((p) => p.name === 'caching-mode')!;
    const cfg: SearchConfig = { platform, consumers: ['correct'], maxSteps: 30, checkTrace: true, faults: { noIotlbSyncMap: true } };
    let checked = 0;
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (seed) => {
        const r = runChunk(cfg, seed, 5);
        fc.pre(r.failure !== undefined);
        const f = r.failure!;
        const back = decodeToken(encodeToken(cfg, f.seed, f.path));
        const again = replayChunk(back.cfg, back.token.seed, back.token.path);
        expect(again).toBeDefined();
        expect(scenarioHash(again!.scenario)).toBe(scenarioHash(f.scenario));
        expect(again!.divergences.map((d) => [d.step, d.kind])).toEqual(f.divergences.map((d) => [d.step, d.kind]));
        checked++;
      }),
      { seed: 20240601, numRuns: 8 },
    );
    expect(checked).toBeGreaterThan(0);
  });
});

describe('an exported scenario file reproduces its failure', () => {
  it('`dmadiff scenario FILE` on the gate\'s .scenario.json returns 1', async () => {
    expect(existsSync(i915.scenario)).toBe(true);
    const r = await cli(['scenario', i915.scenario]);
    expect(r.code, r.out.join('\n')).toBe(1);
    expect(r.out.some((l) => l.includes('DIVERGENCE [consumer] the i915 consumer'))).toBe(true);
  });

  it('the corpus entry holds the same scenario, and the token it was stored with', () => {
    const entries = loadCorpus(i915Corpus);
    expect(entries.map((e) => e.file)).toEqual([i915.corpus]);
    const e = entries[0]!;
    expect(e.error).toBeUndefined();
    expect(e.entry!.token).toBe(i915.token);
    expect(e.entry!.scenario).toEqual(readScenarioFile(i915.scenario));
  });
});

describe('corrupt corpus entries are reported on stdout, kept, and fail the exit unless --ignore-corrupt', () => {
  const files: Record<string, string> = {
    'aaa-not-json.json': '{ "format": "dmadiff-corpus/1", ',
    'bbb-wrong-format.json': JSON.stringify({ format: 'dmadiff-corpus/0', platform: 'qemu-strict', token: 't', divergences: [], scenario: {} }),
    'ccc-bad-scenario.json': JSON.stringify({
      format: 'dmadiff-corpus/1',
      platform: 'qemu-strict',
      token: 't',
      divergences: [],
      scenario: { format: 'dmadiff-scenario/1', devices: [], steps: [] },
    }),
    'ddd-null.json': 'null\n',
  };

  it('invalid JSON, a wrong format, a scenario that fails validation, and null: one stdout line each, the verdict names them, exit 2', async () => {
    const corpus = tmp.fresh('corrupt');
    for (const [n, text] of Object.entries(files)) writeFileSync(join(corpus, n), text);
    const r = await cli(passingGate(corpus));
    expect(r.code, r.out.join('\n')).toBe(2);
    expect(r.out[0]).toBe(`corpus ${corpus}: 4 entries: 0 still failing, 0 fixed, 0 not applicable, 4 unreadable`);
    for (const n of Object.keys(files)) {
      const lines = r.out.filter((l) => l.includes(n));
      expect(lines, n).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^corpus ${join(corpus, n).replace(/[.]/g, '\\.')}: unreadable: .+ \\(kept\\)$`));
    }
    expect(r.out.find((l) => l.includes('ccc-bad-scenario.json'))).toContain('devices');
    expect(r.out.find((l) => l.includes('bbb-wrong-format.json'))).toContain('format');
    const verdict = r.out[r.out.length - 1]!;
    expect(verdict).toMatch(/^verdict: UNREADABLE CORPUS -- 4 entries of /);
    expect(verdict).toContain('--ignore-corrupt');
    expect(r.err).toEqual([]);
    // nothing was deleted or rewritten
    expect(snapshot(corpus)).toEqual(new Map(Object.entries(files).sort()));
  });

  /** The corpus suite of a report's junit.xml: its counts, and each case's name and outcome. */
  function junitCorpus(dir: string): { errors: string; skipped: string; failures: string; cases: Array<{ name: string; outcome: string }> } {
    const x = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(readFileSync(join(dir, 'junit.xml'), 'utf8')) as {
      testsuites: { testsuite: Record<string, unknown> | Array<Record<string, unknown>> };
    };
    const suites = ([] as Array<Record<string, unknown>>).concat(x.testsuites.testsuite);
    const suite = suites.find((t) => String(t['@name']).endsWith('corpus'))!;
    const cases = ([] as Array<Record<string, unknown>>).concat(suite['testcase'] as Record<string, unknown>);
    const outcome = (c: Record<string, unknown>): string => (c['error'] !== undefined ? 'error' : c['skipped'] !== undefined ? 'skipped' : c['failure'] !== undefined ? 'failure' : 'pass');
    return { errors: String(suite['@errors']), skipped: String(suite['@skipped']), failures: String(suite['@failures']), cases: cases.map((c) => ({ name: String(c['@name']), outcome: outcome(c) })) };
  }

  it('the report of such a gate: each unreadable entry is an error case in junit.xml, never a pass', async () => {
    const corpus = tmp.fresh('corrupt');
    const report = tmp.fresh('corrupt-report');
    for (const [n, text] of Object.entries(files)) writeFileSync(join(corpus, n), text);
    const r = await cli([...passingGate(corpus), '--report', report]);
    expect(r.code, r.out.join('\n')).toBe(2);
    const j = junitCorpus(report);
    expect(j.cases.map((c) => c.outcome)).toEqual(['error', 'error', 'error', 'error']);
    expect(j.cases.map((c) => c.name)).toEqual(Object.keys(files).sort().map((n) => join(corpus, n)));
    expect([j.errors, j.failures, j.skipped]).toEqual(['4', '0', '0']);
  });

  it('--ignore-corrupt: the same corpus passes, and the verdict still says what was ignored', async () => {
    const corpus = tmp.fresh('corrupt');
    for (const [n, text] of Object.entries(files)) writeFileSync(join(corpus, n), text);
    const report = tmp.fresh('corrupt-report');
    const r = await cli([...passingGate(corpus), '--ignore-corrupt', '--report', report]);
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(r.out.find((l) => l.startsWith('verdict: '))).toMatch(/^verdict: PASS -- .*; 4 unreadable corpus entries ignored \(--ignore-corrupt\)$/);
    // in junit.xml they are skipped, saying why: not passes, and not errors of a passing gate
    const j = junitCorpus(report);
    expect(j.cases.map((c) => c.outcome)).toEqual(['skipped', 'skipped', 'skipped', 'skipped']);
    expect([j.errors, j.failures, j.skipped]).toEqual(['0', '0', '4']);
    expect(snapshot(corpus)).toEqual(new Map(Object.entries(files).sort()));
  });

  it('a corrupt entry beside a failing one: the good one is still replayed; FAIL, and the verdict counts the unreadable one', async () => {
    const corpus = tmp.fresh('corrupt');
    writeFileSync(join(corpus, 'broken.json'), '][');
    const s = parseScenario(readScenarioFile(i915.scenario));
    const good = storeFailure(corpus, 'qemu-strict', i915.token, s, []);
    const r = await cli(replayGate(corpus));
    expect(r.out[0]).toBe(`corpus ${corpus}: 2 entries: 1 still failing, 0 fixed, 0 not applicable, 1 unreadable`);
    expect(r.out.find((l) => l.startsWith(`corpus ${good}: `))).toMatch(/: still failing on qemu-strict: step \d+: DIVERGENCE \[consumer\]/);
    expect(r.out.find((l) => l.includes('broken.json'))).toMatch(/: unreadable: .* \(kept\)$/);
    expect(r.code).toBe(1);
    expect(r.out[r.out.length - 1]).toMatch(/^verdict: FAIL -- .*; 1 corpus entry unreadable$/);
    expect(existsSync(join(corpus, 'broken.json'))).toBe(true);
  });
});

describe('writeAtomic: a run killed mid-write leaves no torn entry and loses no earlier one', () => {
  /** a corpus with two real entries: the i915 failure and a variant that passes */
  function twoEntryCorpus(): { dir: string; scenario: Scenario; variant: Scenario } {
    const dir = tmp.fresh('atomic');
    const scenario = parseScenario(readScenarioFile(i915.scenario));
    const variant: Scenario = { ...scenario, steps: scenario.steps.map((st) => (st.op === 'consumer_walk' ? { ...st, consumer: 'i915-fixed' as const } : st)) };
    storeFailure(dir, 'qemu-strict', i915.token, scenario, []);
    storeFailure(dir, 'qemu-strict', i915.token, variant, []);
    return { dir, scenario, variant };
  }

  it('killed between the temporary write and the rename: earlier entries byte-identical, loadCorpus reads them, no new entry', () => {
    const { dir, scenario } = twoEntryCorpus();
    const before = snapshot(dir);
    const loadedBefore = loadCorpus(dir);
    expect(loadedBefore.every((e) => e.error === undefined)).toBe(true);
    expect(loadedBefore).toHaveLength(2);

    killed.beforeRename = true;
    // overwriting an existing entry (same scenario hash, new token) and adding a new one both die
    expect(() => storeFailure(dir, 'lazy-2cpu', 'dmadiff1.other', scenario, [])).toThrow(/simulated kill/);
    const fresh: Scenario = { ...scenario, steps: scenario.steps.slice(0, 1) };
    expect(() => storeFailure(dir, 'qemu-strict', i915.token, fresh, [])).toThrow(/simulated kill/);
    killed.beforeRename = false;

    const after = snapshot(dir);
    for (const [n, text] of before) expect(after.get(n), n).toBe(text);
    // the only new files are the orphaned temporaries, which are not corpus entries
    const extra = [...after.keys()].filter((n) => !before.has(n));
    expect(extra.length).toBe(2);
    for (const n of extra) expect(n).toMatch(/\.json\.tmp-\d+-\d+$/);
    expect(existsSync(join(dir, `${scenarioHash(fresh)}.json`))).toBe(false);
    expect(loadCorpus(dir)).toEqual(loadedBefore);
  });

  it('a rename that fails because the target is a directory: the temporary is removed, nothing else changes', () => {
    const { dir } = twoEntryCorpus();
    const target = join(dir, 'occupied');
    mkdirSync(target);
    const before = snapshot2(dir);
    const loadedBefore = loadCorpus(dir);
    expect(() => writeAtomic(target, '{"format":"dmadiff-corpus/1"')).toThrow(WriteError);
    expect(() => writeAtomic(target, '{"format":"dmadiff-corpus/1"')).toThrow(`cannot write ${target}: `);
    const after = snapshot2(dir);
    for (const [n, text] of before) expect(after.get(n), n).toBe(text);
    const extra = [...after.keys()].filter((n) => !before.has(n));
    expect(extra).toEqual([]);
    expect(readdirSync(target)).toEqual([]);
    expect(loadCorpus(dir)).toEqual(loadedBefore);
  });

  it('the gate over a corpus with an orphaned temporary replays the intact entries only', async () => {
    const { dir, scenario } = twoEntryCorpus();
    killed.beforeRename = true;
    expect(() => storeFailure(dir, 'qemu-strict', i915.token, { ...scenario, steps: scenario.steps.slice(0, 1) }, [])).toThrow(/simulated kill/);
    killed.beforeRename = false;
    const r = await cli(replayGate(dir));
    expect(r.err).toEqual([]);
    expect(r.out[0]).toBe(`corpus ${dir}: 2 entries: 1 still failing, 1 fixed, 0 not applicable, 0 unreadable`);
  });

  /** like snapshot, but skipping directories */
  function snapshot2(dir: string): Map<string, string> {
    return new Map(
      readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => d.name)
        .sort()
        .map((n) => [n, readFileSync(join(dir, n), 'utf8')] as const),
    );
  }
});

describe('a corpus entry that still fails fails the next gate', () => {
  it('a gate that would pass on its own returns 1 with a "still failing" line when the i915 entry is in its corpus', async () => {
    const alone = await cli(replayGate(tmp.fresh('corpus')));
    expect(alone.code, alone.out.join('\n')).toBe(0);
    const r = await cli(replayGate(i915Corpus));
    expect(r.code, r.out.join('\n')).toBe(1);
    expect(r.out[0]).toBe(`corpus ${i915Corpus}: 1 entry: 1 still failing, 0 fixed, 0 not applicable, 0 unreadable`);
    expect(r.out[1]).toMatch(new RegExp(`^corpus ${i915.corpus.replace(/[.]/g, '\\.')}: still failing on qemu-strict: step 1: DIVERGENCE \\[consumer\\] the i915 consumer`));
    // the search itself still ran and found nothing new
    expect(r.out.filter((l) => l.startsWith('FAIL on '))).toEqual([]);
    expect(r.out[r.out.length - 1]).toMatch(/^verdict: FAIL -- .*0 found by the search, 1 from the corpus\)$/);
  });

  it('an entry that no longer fails is replayed, kept, and does not fail the gate; --prune removes it', async () => {
    const dir = tmp.fresh('corpus');
    const s = parseScenario(readScenarioFile(i915.scenario));
    const fixed: Scenario = { ...s, steps: s.steps.map((st) => (st.op === 'consumer_walk' ? { ...st, consumer: 'i915-fixed' as const } : st)) };
    const file = storeFailure(dir, 'qemu-strict', i915.token, fixed, []);
    const r = await cli(replayGate(dir));
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(r.out[0]).toBe(`corpus ${dir}: 1 entry: 0 still failing, 1 fixed, 0 not applicable, 0 unreadable`);
    expect(r.out[1]).toBe(`corpus ${file}: fixed (kept; --prune removes it)`);
    expect(existsSync(file)).toBe(true);
    const p = await cli([...replayGate(dir), '--prune']);
    expect(p.code, p.out.join('\n')).toBe(0);
    expect(p.out[1]).toBe(`corpus ${file}: fixed (removed by --prune)`);
    expect(existsSync(file)).toBe(false);
  });
});
