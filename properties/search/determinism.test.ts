/**
 * Determinism and sharding: the same gate prints the same bytes; nightly shards i/n of a budget
 * run exactly the chunks of the unsharded search (disjointly), with tallies that add up to its
 * tallies; merge of the shards prints the unsharded table and passes, or, with a seeded bug, fails
 * and stores the failure in its corpus.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus } from '../../harness/search/corpus.js';
import { COVERAGE_KEYS, CHUNK_RUNS, PLATFORM_MATRIX } from '../../harness/search/property.js';
import { decodeToken } from '../../harness/search/token.js';
import { TmpDirs, cli, parseTable, searchArgs, tableLines, type CliRun } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

interface TallyJson {
  runs: number;
  steps: number;
  divergences: number;
  allowlisted: Record<string, number>;
  coverage: Record<string, number>;
}

interface ShardJson {
  format: string;
  shard: string;
  search: { seed: number; runsPerPlatform: number; platforms: string[]; consumers: string[]; maxSteps: number; checkTrace: boolean; seededBugs: string[]; seconds: number | null };
  expectedChunks: number;
  interrupted: boolean;
  chunks: string[];
  platforms: Array<{ name: string; tally: TallyJson }>;
  failures: Array<{ platform: string; token: string; hash: string; divergences: unknown[]; scenario: unknown }>;
}

function readShard(path: string): ShardJson {
  return JSON.parse(readFileSync(path, 'utf8')) as ShardJson;
}

/** per-platform sums of several shard documents */
function summed(docs: readonly ShardJson[]): Map<string, TallyJson> {
  const m = new Map<string, TallyJson>();
  for (const d of docs) {
    for (const p of d.platforms) {
      const t = m.get(p.name) ?? { runs: 0, steps: 0, divergences: 0, allowlisted: {}, coverage: Object.fromEntries(COVERAGE_KEYS.map((b) => [b, 0])) };
      t.runs += p.tally.runs;
      t.steps += p.tally.steps;
      t.divergences += p.tally.divergences;
      for (const [id, n] of Object.entries(p.tally.allowlisted)) t.allowlisted[id] = (t.allowlisted[id] ?? 0) + n;
      for (const b of COVERAGE_KEYS) t.coverage[b] = t.coverage[b]! + p.tally.coverage[b]!;
      m.set(p.name, t);
    }
  }
  return m;
}

describe('gate output is deterministic', () => {
  it('the same passing gate twice (a fresh corpus each time, at the same path) prints byte-identical stdout', async () => {
    const corpus = join(tmp.fresh('det'), 'corpus');
    const argv = ['gate', ...searchArgs({ runs: 50, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus })];
    const a = await cli(argv);
    rmSync(corpus, { recursive: true, force: true });
    expect(existsSync(corpus)).toBe(false);
    const b = await cli(argv);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    expect(b.out.join('\n')).toBe(a.out.join('\n'));
    expect(b.err).toEqual(a.err);
  });

  it('a different fresh corpus directory changes only the corpus line', async () => {
    const argv = (corpus: string): string[] => ['gate', ...searchArgs({ runs: 25, seed: 3, platforms: 'aw57-forcedac', consumers: 'correct,i915-fixed', corpus })];
    const c1 = tmp.fresh('det');
    const c2 = tmp.fresh('det');
    const a = await cli(argv(c1));
    const b = await cli(argv(c2));
    expect(a.out[0]).toContain(c1);
    expect(b.out[0]).toBe(a.out[0]!.replace(c1, c2));
    expect(b.out.slice(1)).toEqual(a.out.slice(1));
  });

  it('a failing gate twice prints the same failure, token and paths', async () => {
    const corpus = join(tmp.fresh('det'), 'corpus');
    const argv = ['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus })];
    const a = await cli(argv);
    const scenarioA = readFileSync(join(corpus, readdirScenario(corpus)), 'utf8');
    rmSync(corpus, { recursive: true, force: true });
    const b = await cli(argv);
    expect(a.code).toBe(1);
    expect(b.code).toBe(1);
    expect(b.out.join('\n')).toBe(a.out.join('\n'));
    expect(readFileSync(join(corpus, readdirScenario(corpus)), 'utf8')).toBe(scenarioA);
  });
});

function readdirScenario(dir: string): string {
  const names = loadCorpus(dir).map((e) => e.file.slice(dir.length + 1).replace(/\.json$/, '.scenario.json'));
  if (names.length !== 1) throw new Error(`expected one corpus entry in ${dir}, got ${names.length}`);
  return names[0]!;
}

describe('nightly shards cover exactly the unsharded search', () => {
  // 60 runs = chunks of 25, 25 and 10 on each of two platforms (ids 0 and 3 in the matrix)
  const RUNS = 60;
  const SEED = 2;
  const PLATFORMS = 'qemu-strict,aw57-forcedac';
  let whole: CliRun;
  let wholeDoc: ShardJson;
  let shardRuns: CliRun[];
  let shardDocs: ShardJson[];
  let shardFiles: string[];

  beforeAll(async () => {
    const dir = tmp.fresh('shard');
    const nightly = async (shard: string, out: string): Promise<CliRun> =>
      cli(['nightly', '--shard', shard, '--out', out, ...searchArgs({ runs: RUNS, seed: SEED, platforms: PLATFORMS, consumers: 'correct,i915-fixed', corpus: tmp.fresh('shard') })]);
    whole = await nightly('1/1', join(dir, 'whole.json'));
    wholeDoc = readShard(join(dir, 'whole.json'));
    shardFiles = [join(dir, 's1.json'), join(dir, 's2.json')];
    shardRuns = [await nightly('1/2', shardFiles[0]!), await nightly('2/2', shardFiles[1]!)];
    shardDocs = shardFiles.map(readShard);
  });

  it('every nightly returns 0 and writes a dmadiff-shard/2 document recording the search it is a share of', () => {
    for (const r of [whole, ...shardRuns]) {
      expect(r.code, r.out.join('\n')).toBe(0);
      expect(r.err).toEqual([]);
      expect(r.out[r.out.length - 1]).toMatch(/^verdict: PASS -- /);
    }
    expect(wholeDoc.format).toBe('dmadiff-shard/2');
    expect(shardDocs.map((d) => d.shard)).toEqual(['1/2', '2/2']);
    for (const d of [wholeDoc, ...shardDocs]) {
      expect(d.search).toEqual({ seed: SEED, runsPerPlatform: RUNS, platforms: PLATFORMS.split(','), consumers: ['correct', 'i915-fixed'], maxSteps: 30, checkTrace: true, seededBugs: [], seconds: null });
      expect(d.interrupted).toBe(false);
      expect(d.chunks).toHaveLength(d.expectedChunks);
      expect(d.failures).toEqual([]);
    }
  });

  it('the unsharded search runs ceil(runs/25) chunks per platform, named by matrix position', () => {
    const per = Math.ceil(RUNS / CHUNK_RUNS);
    const ids = PLATFORMS.split(',').map((n) => PLATFORM_MATRIX.findIndex((p) => p.name === n));
    expect(new Set(wholeDoc.chunks)).toEqual(new Set(ids.flatMap((id) => Array.from({ length: per }, (_, j) => `${id}:${j}`))));
    expect(wholeDoc.chunks).toHaveLength(ids.length * per);
    for (const p of wholeDoc.platforms) expect(p.tally.runs).toBe(RUNS);
  });

  it('shards 1/2 and 2/2 are disjoint, non-empty, and together run exactly the chunks of 1/1', () => {
    const [a, b] = shardDocs.map((d) => new Set(d.chunks)) as [Set<string>, Set<string>];
    expect(a.size).toBeGreaterThan(0);
    expect(b.size).toBeGreaterThan(0);
    for (const c of a) expect(b.has(c)).toBe(false);
    expect(new Set([...a, ...b])).toEqual(new Set(wholeDoc.chunks));
    expect(a.size + b.size).toBe(wholeDoc.chunks.length);
  });

  it('the shards\' per-platform tallies (runs, steps, divergences, allowlisted, coverage) sum to those of 1/1', () => {
    const sums = summed(shardDocs);
    expect([...sums.keys()]).toEqual(wholeDoc.platforms.map((p) => p.name));
    for (const p of wholeDoc.platforms) {
      const s = sums.get(p.name)!;
      expect({ runs: s.runs, steps: s.steps, divergences: s.divergences }).toEqual({ runs: p.tally.runs, steps: p.tally.steps, divergences: p.tally.divergences });
      expect(s.allowlisted).toEqual(p.tally.allowlisted);
      expect(s.coverage).toEqual(p.tally.coverage);
    }
  });

  it('merge of the two shards prints the table of 1/1, returns 0 and writes a summary', async () => {
    const summary = join(tmp.fresh('shard'), 'summary.json');
    const corpus = tmp.fresh('shard');
    const m = await cli(['merge', ...shardFiles, '--out', summary, '--corpus', corpus]);
    expect(m.code, m.out.join('\n')).toBe(0);
    expect(m.err).toEqual([]);
    expect(tableLines(m.out)).toEqual(tableLines(whole.out));
    expect(parseTable(m.out).map((r) => r.runs)).toEqual([RUNS, RUNS]);
    expect(m.out.slice(-2)).toEqual([`merged 2 shard(s): ${wholeDoc.chunks.length} chunk(s), 0 distinct failure(s)`, 'verdict: PASS -- no divergence outside the allowlist']);
    const doc = JSON.parse(readFileSync(summary, 'utf8')) as { format: string; shards: string[]; complete: boolean; chunks: number; failures: unknown[] };
    expect(doc).toMatchObject({ format: 'dmadiff-summary/2', shards: ['1/2', '2/2'], complete: true, chunks: wholeDoc.chunks.length, failures: [] });
    expect(loadCorpus(corpus)).toEqual([]);
  });

  it('merging a shard with itself is refused: exit 2, one line naming both files, nothing printed', async () => {
    const m = await cli(['merge', shardFiles[0]!, shardFiles[0]!, '--corpus', tmp.fresh('shard')]);
    expect(m.code).toBe(2);
    expect(m.out).toEqual([]);
    expect(m.err).toEqual([`dmadiff: merge: duplicated shard: 1/2 is both ${shardFiles[0]} and ${shardFiles[0]}`]);
  });
});

describe('merge with a seeded bug', () => {
  it('shards of a broken search merge to exit 1 and the failure lands in the merge corpus (and fails the next gate)', async () => {
    const dir = tmp.fresh('bugshard');
    const files = [join(dir, 's1.json'), join(dir, 's2.json')];
    for (const [i, f] of files.entries()) {
      const r = await cli([
        'nightly',
        '--shard',
        `${i + 1}/2`,
        '--out',
        f,
        '--broken',
        'noIotlbSyncMap',
        ...searchArgs({ runs: 50, seed: 3, platforms: 'caching-mode', consumers: 'correct', corpus: tmp.fresh('bugshard') }),
      ]);
      expect(r.code, r.out.join('\n')).toBe(1);
      expect(r.out).toContainEqual(expect.stringMatching(/^shard \d\/2: 1 of 1 chunk\(s\), 1 failure\(s\); wrote .*; failures stored in /));
      expect(r.out[r.out.length - 1]).toMatch(/^verdict: FAIL -- /);
      const doc = readShard(f);
      expect(doc.failures).toHaveLength(1);
      expect(decodeToken(doc.failures[0]!.token).token.faults).toEqual(['noIotlbSyncMap']);
    }
    const distinct = new Set(files.map((f) => readShard(f).failures[0]!.hash)).size;
    const corpus = tmp.fresh('bugshard');
    const m = await cli(['merge', ...files, '--corpus', corpus]);
    expect(m.code, m.out.join('\n')).toBe(1);
    expect(m.out.filter((l) => l.startsWith('FAIL on caching-mode: '))).toHaveLength(distinct);
    expect(m.out.slice(-2)).toEqual([`merged 2 shard(s): 2 chunk(s), ${distinct} distinct failure(s)`, `verdict: FAIL -- ${distinct} distinct failure(s) outside the allowlist`]);
    const entries = loadCorpus(corpus);
    expect(entries).toHaveLength(distinct);
    for (const e of entries) {
      expect(e.error).toBeUndefined();
      expect(e.entry?.platform).toBe('caching-mode');
      expect(decodeToken(e.entry!.token).token.faults).toEqual(['noIotlbSyncMap']);
    }
    // the stored entry needs its seeded bug: a gate without it passes it over, naming the flag;
    // a gate with it replays it and fails
    const n = `${distinct} entr${distinct === 1 ? 'y' : 'ies'}`;
    const plain = await cli(['gate', ...searchArgs({ runs: 25, seed: 3, platforms: 'caching-mode', consumers: 'correct', corpus })]);
    expect(plain.code, plain.out.join('\n')).toBe(0);
    expect(plain.out[0]).toBe(`corpus ${corpus}: ${n}: 0 still failing, 0 fixed, ${distinct} not applicable, 0 unreadable`);
    expect(plain.out.filter((l) => l.endsWith(': not applicable: needs the seeded bug noIotlbSyncMap (--broken noIotlbSyncMap)'))).toHaveLength(distinct);
    const g = await cli(['gate', '--broken', 'noIotlbSyncMap', ...searchArgs({ runs: 25, seed: 3, platforms: 'caching-mode', consumers: 'correct', corpus })]);
    expect(g.code, g.out.join('\n')).toBe(1);
    expect(g.out[0]).toBe(`corpus ${corpus}: ${n}: ${distinct} still failing, 0 fixed, 0 not applicable, 0 unreadable`);
    expect(g.out.filter((l) => / still failing on caching-mode: step \d+: DIVERGENCE /.test(l))).toHaveLength(distinct);
  });
});
