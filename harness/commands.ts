/**
 * The long-running commands: gate (is the migration safe?), nightly (one shard of a long
 * search), merge (shards into one summary and corpus) and replay (a token back into its run).
 * Output is deterministic for a given seed and budget; timings go only to the progress line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SeededBugs } from './paths.js';
import type { Divergence } from './checker.js';
import { exportScenario, loadCorpus, storeFailure, writeAtomic } from './corpus.js';
import { stableJson } from './json.js';
import { COVERAGE_KEYS, PLATFORM_MATRIX, addTally, emptyTally, replayChunk, type Tally } from './property.js';
import { renderDivergence } from './render.js';
import { failing, runScenario } from './runner.js';
import { scenarioToJson, type Consumer, type Scenario } from './scenario.js';
import { renderTable, search, unhit, type FoundFailure, type PlatformReport, type SearchReport } from './search.js';
import { decodeToken, TokenError } from './token.js';
import { parseScenario } from './validation.js';

export class CommandError extends Error {}

/** Exit codes: 0 pass, 1 a divergence outside the allowlist, 2 bad usage, 3 internal error, 4 inconclusive. */
export const EXIT_FAIL = 1;
export const EXIT_INCONCLUSIVE = 4;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  progress?: (line: string) => void;
}

export interface SearchFlags {
  seed: number;
  runs: number;
  seconds?: number;
  consumers: Consumer[];
  platforms: string[];
  maxSteps: number;
  corpus: string;
  checkTrace: boolean;
  /** a branch that applies and was never reached does not make the verdict INCONCLUSIVE */
  allowUnhit: boolean;
  faults: SeededBugs;
}

function selectPlatforms(names: string[]): { platforms: typeof PLATFORM_MATRIX; ids: number[] } {
  if (names.length === 0) throw new CommandError('--platforms: no platform given');
  const ids = names.map((n) => {
    const i = PLATFORM_MATRIX.findIndex((p) => p.name === n);
    if (i < 0) throw new CommandError(`--platforms: unknown platform "${n}" (known: ${PLATFORM_MATRIX.map((p) => p.name).join(', ')})`);
    return i;
  });
  return { platforms: ids.map((i) => PLATFORM_MATRIX[i]!), ids };
}

/** The consumer whose walk broke equivalence, if a consumer divergence is among them. */
function brokenConsumer(f: FoundFailure): string | undefined {
  for (const d of f.divergences) {
    if (d.kind !== 'consumer') continue;
    const st = f.scenario.steps[d.step];
    if (st !== undefined && st.op === 'consumer_walk') return st.consumer;
  }
  return undefined;
}

function faultsOf(token: string): SeededBugs {
  try {
    return decodeToken(token).cfg.faults;
  } catch {
    return {};
  }
}

/** Replay the corpus: entries that still fail, and the unreadable ones (reported, kept). */
function replayCorpus(dir: string, checkTrace: boolean, io: Io): { replayed: number; failing: string[]; corrupt: number } {
  const r = { replayed: 0, failing: [] as string[], corrupt: 0 };
  for (const e of loadCorpus(dir)) {
    if (e.error !== undefined || e.scenario === undefined || e.entry === undefined) {
      r.corrupt++;
      io.err(`dmadiff: corpus: ${e.file}: ${e.error ?? 'unreadable'} (skipped, kept)`);
      continue;
    }
    r.replayed++;
    const doc = runScenario(e.scenario, { faults: faultsOf(e.entry.token) });
    if (failing(doc, checkTrace).length > 0) r.failing.push(e.file);
  }
  return r;
}

function reportFailure(f: FoundFailure, dir: string, io: Io): void {
  const entry = storeFailure(dir, f.platform, f.token, f.scenario, f.divergences);
  const scen = join(dir, `${f.hash}.scenario.json`);
  exportScenario(scen, f.scenario);
  io.out(`FAIL on ${f.platform}: ${f.scenario.steps.length} step(s) after shrinking`);
  for (const d of f.divergences) io.out(`  ${renderDivergence(d)}`);
  const c = brokenConsumer(f);
  if (c !== undefined) io.out(`  consumer that broke equivalence: ${c}`);
  io.out(`  replay:   dmadiff replay ${f.token}`);
  io.out(`  scenario: ${scen}`);
  io.out(`  corpus:   ${entry}`);
}

/** dmadiff gate */
/** The search the flags describe, over the platforms they name. */
function searchWith(f: SearchFlags, io: Io, how: { shard?: { index: number; count: number }; stopAtFirstFailure: boolean }): SearchReport {
  const { platforms, ids } = selectPlatforms(f.platforms);
  return search({
    seed: f.seed,
    runsPerPlatform: f.runs,
    ...(f.seconds !== undefined ? { seconds: f.seconds } : {}),
    platforms,
    platformIds: ids,
    consumers: f.consumers,
    maxSteps: f.maxSteps,
    checkTrace: f.checkTrace,
    faults: f.faults,
    ...how,
    ...(io.progress !== undefined ? { progress: io.progress } : {}),
  });
}

export function gate(f: SearchFlags, io: Io): number {
  selectPlatforms(f.platforms); // bad names are usage errors before the corpus is touched
  const corpus = replayCorpus(f.corpus, f.checkTrace, io);
  io.out(`corpus ${f.corpus}: ${corpus.replayed} entr${corpus.replayed === 1 ? 'y' : 'ies'} replayed, ${corpus.failing.length} still failing, ${corpus.corrupt} unreadable`);
  for (const file of corpus.failing) io.out(`FAIL (corpus) ${file}`);
  const r = searchWith(f, io, { stopAtFirstFailure: true });
  for (const line of renderTable(r.platforms)) io.out(line);
  for (const x of r.failures) reportFailure(x, f.corpus, io);
  const runs = r.platforms.reduce((a, p) => a + p.tally.runs, 0);
  if (r.failures.length > 0 || corpus.failing.length > 0) {
    io.out(`verdict: FAIL -- a driver or a device can tell the two paths apart in a way no allowlist entry explains; the migration is not safe as it stands (consumers: ${f.consumers.join(',')})`);
    return EXIT_FAIL;
  }
  const missing = unhit(r.platforms);
  if (missing.length > 0 && !f.allowUnhit) {
    io.out(`verdict: INCONCLUSIVE -- no divergence outside the allowlist in ${runs} generated runs, but branches that apply were never reached, so the gate cannot vouch for them:`);
    for (const m of missing) io.out(`  ${m}`);
    io.out('  (raise --runs, or accept with --allow-unhit)');
    return EXIT_INCONCLUSIVE;
  }
  io.out(`verdict: PASS -- in ${runs} generated runs no driver (consumers: ${f.consumers.join(',')}) or device could tell the two paths apart beyond the allowlisted differences${missing.length > 0 ? ` (unreached branches allowed: ${missing.join('; ')})` : ''}`);
  return 0;
}

export const SHARD_FORMAT = 'dmadiff-shard/1';

interface ShardFailure {
  platform: string;
  token: string;
  hash: string;
  divergences: Array<{ step: number; kind: string; detail: string }>;
  scenario: unknown;
}

interface ShardDoc {
  format: typeof SHARD_FORMAT;
  shard: string;
  seed: number;
  runsPerPlatform: number;
  chunks: string[];
  platforms: PlatformReport[];
  failures: ShardFailure[];
}

function briefDivergences(ds: readonly Divergence[]): ShardFailure['divergences'] {
  return ds.map((d) => ({ step: d.step, kind: d.kind, detail: d.detail }));
}

/** dmadiff nightly --shard i/n: one deterministic share of the search, written as JSON. */
export function nightly(f: SearchFlags, shard: { index: number; count: number }, outFile: string, io: Io): number {
  const r = searchWith(f, io, { shard, stopAtFirstFailure: false });
  const doc: ShardDoc = {
    format: SHARD_FORMAT,
    shard: `${shard.index}/${shard.count}`,
    seed: f.seed,
    runsPerPlatform: f.runs,
    chunks: r.chunks,
    platforms: r.platforms,
    failures: r.failures.map((x) => ({ platform: x.platform, token: x.token, hash: x.hash, divergences: briefDivergences(x.divergences), scenario: scenarioToJson(x.scenario) })),
  };
  writeAtomic(outFile, `${stableJson(doc)}\n`);
  for (const x of r.failures) storeFailure(f.corpus, x.platform, x.token, x.scenario, x.divergences);
  for (const line of renderTable(r.platforms)) io.out(line);
  io.out(`shard ${doc.shard}: ${r.chunks.length} chunk(s), ${r.failures.length} failure(s); wrote ${outFile}`);
  return 0;
}

type Fields = Record<string, unknown>;

function isObject(v: unknown): v is Fields {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Check every field of a shard document that merge uses; the first problem is a CommandError
 * "FILE: FIELD: what is wrong" (one line), thrown before anything is printed or written.
 */
function checkShard(file: string, d: unknown): ShardDoc {
  const bad = (field: string, what: string): never => {
    throw new CommandError(`${file}: ${field}: ${what}`);
  };
  if (!isObject(d) || d['format'] !== SHARD_FORMAT) bad('format', `expected a ${SHARD_FORMAT} document`);
  const doc = d as Fields;
  const count = (o: Fields, k: string, where: string): void => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${where}.${k}`, 'expected a non-negative integer');
  };
  const text = (o: Fields, k: string, where: string): void => {
    if (typeof o[k] !== 'string') bad(`${where}.${k}`, 'expected a string');
  };
  const list = (k: string): unknown[] => {
    const v = doc[k];
    if (!Array.isArray(v)) bad(k, 'expected an array');
    return v as unknown[];
  };
  list('chunks').forEach((c, i) => {
    if (typeof c !== 'string') bad(`chunks[${i}]`, 'expected a string');
  });
  list('platforms').forEach((p, i) => {
    const w = `platforms[${i}]`;
    if (!isObject(p)) bad(w, 'expected an object');
    const po = p as Fields;
    text(po, 'name', w);
    const t = po['tally'];
    if (!isObject(t)) bad(`${w}.tally`, 'expected an object');
    const to = t as Fields;
    for (const k of ['runs', 'steps', 'divergences']) count(to, k, `${w}.tally`);
    const al = to['allowlisted'];
    if (!isObject(al)) bad(`${w}.tally.allowlisted`, 'expected an object of counts by allowlist entry');
    for (const k of Object.keys(al as Fields)) count(al as Fields, k, `${w}.tally.allowlisted`);
    const cov = to['coverage'];
    if (!isObject(cov)) bad(`${w}.tally.coverage`, `expected an object with a count for each of ${COVERAGE_KEYS.join(', ')}`);
    for (const b of COVERAGE_KEYS) count(cov as Fields, b, `${w}.tally.coverage`);
  });
  list('failures').forEach((x, i) => {
    const w = `failures[${i}]`;
    if (!isObject(x)) bad(w, 'expected an object');
    const xo = x as Fields;
    for (const k of ['hash', 'platform', 'token']) text(xo, k, w);
    const ds = xo['divergences'];
    if (!Array.isArray(ds)) bad(`${w}.divergences`, 'expected an array');
    (ds as unknown[]).forEach((dv, j) => {
      const wd = `${w}.divergences[${j}]`;
      if (!isObject(dv)) bad(wd, 'expected an object');
      count(dv as Fields, 'step', wd);
      text(dv as Fields, 'kind', wd);
      text(dv as Fields, 'detail', wd);
    });
  });
  return doc as unknown as ShardDoc;
}

/** dmadiff merge: shard results into one summary and one corpus. */
export function merge(files: string[], outFile: string | undefined, corpusDir: string, io: Io): number {
  const byPlatform = new Map<string, Tally>();
  const failures = new Map<string, ShardFailure>();
  const chunks = new Set<string>();
  let overlap = 0;
  const docs: Array<{ file: string; doc: ShardDoc; scenarios: Scenario[] }> = [];
  // read and check every file before printing anything
  for (const file of files) {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new CommandError(`${file}: ${e instanceof Error ? e.message.split('\n')[0] : 'unreadable'}`);
    }
    const shard = checkShard(file, doc);
    const scenarios = shard.failures.map((x, i) => {
      try {
        return parseScenario(x.scenario);
      } catch (e) {
        throw new CommandError(`${file}: failures[${i}].scenario: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
    docs.push({ file, doc: shard, scenarios });
  }
  const scenarioOf = new Map<string, Scenario>();
  for (const { doc, scenarios } of docs) {
    for (const c of doc.chunks) {
      if (chunks.has(c)) overlap++;
      chunks.add(c);
    }
    for (const p of doc.platforms) {
      const t = byPlatform.get(p.name) ?? emptyTally();
      addTally(t, p.tally);
      byPlatform.set(p.name, t);
    }
    doc.failures.forEach((x, i) => {
      failures.set(x.hash, x);
      scenarioOf.set(x.hash, scenarios[i]!);
    });
  }
  const rows = [...byPlatform].map(([name, tally]) => ({ name, tally }));
  for (const line of renderTable(rows)) io.out(line);
  if (overlap > 0) io.err(`dmadiff: merge: ${overlap} chunk(s) appear in more than one shard`);
  for (const x of failures.values()) {
    storeFailure(corpusDir, x.platform, x.token, scenarioOf.get(x.hash)!, x.divergences);
    io.out(`FAIL on ${x.platform}: ${x.divergences.map((d) => `step ${d.step} [${d.kind}] ${d.detail}`).join('; ')}`);
    io.out(`  replay: dmadiff replay ${x.token}`);
  }
  if (outFile !== undefined) {
    writeAtomic(outFile, `${stableJson({ format: 'dmadiff-summary/1', shards: files.length, chunks: chunks.size, platforms: rows, failures: [...failures.values()] })}\n`);
  }
  io.out(`merged ${files.length} shard(s): ${chunks.size} chunk(s), ${failures.size} distinct failure(s)`);
  return failures.size > 0 ? 1 : 0;
}

/** dmadiff replay TOKEN: regenerate the failing run; export its scenario. */
export function replay(token: string, outFile: string | undefined, io: Io): number {
  let decoded;
  try {
    decoded = decodeToken(token);
  } catch (e) {
    if (e instanceof TokenError) throw new CommandError(e.message);
    throw e;
  }
  const f = replayChunk(decoded.cfg, decoded.token.seed, decoded.token.path);
  if (f === undefined) {
    io.out(`no divergence at that token any more (platform ${decoded.token.platform}, seed ${decoded.token.seed}, path ${decoded.token.path})`);
    return 0;
  }
  io.out(`reproduced on ${decoded.token.platform}: ${f.scenario.steps.length} step(s)`);
  for (const d of f.divergences) io.out(`  ${renderDivergence(d)}`);
  if (outFile !== undefined) {
    exportScenario(outFile, f.scenario);
    io.out(`  scenario: ${outFile}`);
  }
  return 1;
}
