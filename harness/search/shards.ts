/**
 * Nightly shards and their merge. A shard document records the flags of the search it is a
 * share of; `merge` refuses (one line, exit 2) a set of shards that are not the shares of one
 * search -- mixed flags, a shard twice, or a share missing (or stopped early) unless --partial --
 * because a merged summary of such a set would count runs that were never run, or twice.
 */
import { readFileSync } from 'node:fs';
import { must } from '../../kernel/assert.js';
import type { Io, SearchFlags } from '../cli/commands.js';
import { CommandError, EXIT_FAIL, EXIT_INCONCLUSIVE } from '../cli/exit.js';
import type { Divergence } from '../check/checker.js';
import { scenarioHash, storeFailure, writeAtomic } from './corpus.js';
import { stableJson } from '../cli/json.js';
import { bugList } from '../run/paths.js';
import { COVERAGE_KEYS, addTally, emptyTally, type Tally } from './property.js';
import { scenarioToJson, type Scenario } from '../workload/scenario.js';
import { renderTable, type PlatformReport, type SearchReport } from './search.js';
import { parseScenario } from '../workload/validation.js';
import { failureReports, platformRows, verdictWord } from '../../reports/from-search.js';
import { reportDoc, writeReportsBeside } from '../../reports/write.js';

export const SHARD_FORMAT = 'dmadiff-shard/2';

interface ShardFailure {
  platform: string;
  token: string;
  hash: string;
  divergences: Array<{ step: number; kind: string; detail: string }>;
  scenario: unknown;
}

/** The flags that make two shards shares of the same search. */
interface SearchRecord {
  seed: number;
  runsPerPlatform: number;
  platforms: string[];
  consumers: string[];
  maxSteps: number;
  checkTrace: boolean;
  seededBugs: string[];
  seconds: number | null;
}

interface ShardDoc {
  format: typeof SHARD_FORMAT;
  shard: string;
  search: SearchRecord;
  /** the chunks this share runs when nothing stops it */
  expectedChunks: number;
  /** the chunks it finished, "platform-id:chunk" */
  chunks: string[];
  /** stopped by SIGINT/SIGTERM */
  interrupted: boolean;
  platforms: PlatformReport[];
  failures: ShardFailure[];
}

function parseShard(v: string): { index: number; count: number } | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  if (m === null || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) return undefined;
  return { index: Number(m[1]), count: Number(m[2]) };
}

/** The shard document of a finished (or stopped) nightly share. */
export function shardDoc(
  f: SearchFlags,
  shard: { index: number; count: number },
  r: SearchReport,
  failures: ReadonlyArray<{ platform: string; token: string; scenario: Scenario; divergences: readonly Divergence[] }>,
): ShardDoc {
  return {
    format: SHARD_FORMAT,
    shard: `${shard.index}/${shard.count}`,
    search: {
      seed: f.seed,
      runsPerPlatform: f.runs,
      platforms: [...f.platforms],
      consumers: [...f.consumers],
      maxSteps: f.maxSteps,
      checkTrace: f.checkTrace,
      seededBugs: bugList(f.faults),
      seconds: f.seconds ?? null,
    },
    expectedChunks: r.planned,
    chunks: r.chunks,
    interrupted: r.interrupted,
    platforms: r.platforms,
    failures: failures.map((x) => ({
      platform: x.platform,
      token: x.token,
      hash: scenarioHash(x.scenario),
      divergences: x.divergences.map((d) => ({ step: d.step, kind: d.kind, detail: d.detail })),
      scenario: scenarioToJson(x.scenario),
    })),
  };
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
  const sh = doc['shard'];
  if (typeof sh !== 'string' || parseShard(sh) === undefined) bad('shard', 'expected "i/n" with 1 <= i <= n');
  const se = doc['search'];
  if (!isObject(se)) bad('search', 'expected the flags of the search');
  const so = se as Fields;
  for (const k of ['seed', 'runsPerPlatform', 'maxSteps']) if (typeof so[k] !== 'number' || !Number.isSafeInteger(so[k])) bad(`search.${k}`, 'expected an integer');
  for (const k of ['platforms', 'consumers', 'seededBugs']) if (!Array.isArray(so[k]) || !(so[k] as unknown[]).every((x) => typeof x === 'string')) bad(`search.${k}`, 'expected a list of names');
  if (typeof so['checkTrace'] !== 'boolean') bad('search.checkTrace', 'expected true or false');
  if (so['seconds'] !== null && (typeof so['seconds'] !== 'number' || !Number.isSafeInteger(so['seconds']))) bad('search.seconds', 'expected an integer or null');
  if (typeof doc['expectedChunks'] !== 'number' || !Number.isSafeInteger(doc['expectedChunks'])) bad('expectedChunks', 'expected an integer');
  if (typeof doc['interrupted'] !== 'boolean') bad('interrupted', 'expected true or false');
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
    if (!isObject(xo['scenario'])) bad(`${w}.scenario`, 'expected a dmadiff-scenario/1 object');
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


/** The first flag in which two searches differ, as `--flag a` vs `b`. */
function firstDifference(a: SearchRecord, b: SearchRecord): string | undefined {
  const flags: Array<[keyof SearchRecord, string]> = [
    ['seed', '--seed'],
    ['runsPerPlatform', '--runs'],
    ['platforms', '--platforms'],
    ['consumers', '--consumers'],
    ['maxSteps', '--max-steps'],
    ['checkTrace', '--no-trace'],
    ['seededBugs', '--broken'],
    ['seconds', '--seconds'],
  ];
  for (const [k, flag] of flags) if (stableJson(a[k], true) !== stableJson(b[k], true)) return `${flag}: ${stableJson(a[k], true)} vs ${stableJson(b[k], true)}`;
  return undefined;
}

export interface MergeOptions {
  out?: string;
  markdown?: string;
  corpus: string;
  /** accept a set with shares missing or stopped early (the shards that finished) */
  partial: boolean;
  /** --report DIR: the merged search's report in every format */
  report?: string;
}

/**
 * Whether the shards are the shares of one search: same flags, same n, each index once. A
 * missing or stopped share is returned (for --partial) rather than thrown.
 */
function checkSet(docs: ReadonlyArray<{ file: string; doc: ShardDoc }>): string[] {
  const first = must(docs[0], 'a shard file (merge takes one or more)');
  const n = must(parseShard(first.doc.shard), `shard i/n in ${first.file} (checkShard read it)`).count;
  const byIndex = new Map<number, string>();
  for (const { file, doc } of docs) {
    const diff = firstDifference(first.doc.search, doc.search);
    if (diff !== undefined) throw new CommandError(`merge: mixed shards: ${file} and ${first.file} are shares of different searches (${diff})`);
    const s = must(parseShard(doc.shard), `shard i/n in ${file} (checkShard read it)`);
    if (s.count !== n) throw new CommandError(`merge: mixed shards: ${file} is shard ${doc.shard}, ${first.file} is shard ${first.doc.shard}`);
    const seen = byIndex.get(s.index);
    if (seen !== undefined) throw new CommandError(`merge: duplicated shard: ${doc.shard} is both ${seen} and ${file}`);
    byIndex.set(s.index, file);
  }
  const gaps: string[] = [];
  for (let i = 1; i <= n; i++) if (!byIndex.has(i)) gaps.push(`shard ${i}/${n} missing`);
  for (const { doc } of docs) {
    if (doc.interrupted || doc.chunks.length < doc.expectedChunks) gaps.push(`shard ${doc.shard} stopped early (${doc.chunks.length} of ${doc.expectedChunks} chunks${doc.interrupted ? ', interrupted' : ''})`);
  }
  return gaps;
}

/** The merged summary as markdown (a CI job summary): verdict, table, each failure with its token. */
function markdownSummary(rows: PlatformReport[], failures: ShardFailure[], gaps: string[], verdict: string): string {
  const md = ['## dmadiff nightly', '', `**${verdict}**`, ''];
  if (gaps.length > 0) md.push('Partial: the summary covers only the shards that finished.', '', ...gaps.map((g) => `- ${g}`), '');
  md.push('```', ...renderTable(rows), '```', '');
  if (failures.length > 0) {
    md.push(`### ${failures.length} failure(s)`, '');
    for (const x of failures) {
      md.push(`- **${x.platform}**: ${x.divergences.map((d) => `step ${d.step} [${d.kind}] ${d.detail}`).join('; ')}`);
      md.push(`  \`dmadiff replay ${x.token}\``);
    }
    md.push('');
  }
  return md.join('\n');
}

/** dmadiff merge: shard results into one summary and one corpus. */
export function merge(files: string[], o: MergeOptions, io: Io): number {
  const docs: Array<{ file: string; doc: ShardDoc; scenarios: Scenario[] }> = [];
  // read and check every file, and the set, before printing or writing anything
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
        throw new CommandError(`${file}: failures[${i}].scenario.${e instanceof Error ? e.message : String(e)}`);
      }
    });
    docs.push({ file, doc: shard, scenarios });
  }
  const gaps = checkSet(docs);
  if (gaps.length > 0 && !o.partial) throw new CommandError(`merge: incomplete shard set: ${gaps.join('; ')} (pass --partial to merge the shards that finished)`);
  const byPlatform = new Map<string, Tally>();
  const failures = new Map<string, ShardFailure>();
  const scenarioOf = new Map<string, Scenario>();
  const chunks = new Set<string>();
  for (const { doc, scenarios } of docs) {
    for (const c of doc.chunks) chunks.add(c);
    for (const p of doc.platforms) {
      const t = byPlatform.get(p.name) ?? emptyTally();
      addTally(t, p.tally);
      byPlatform.set(p.name, t);
    }
    doc.failures.forEach((x, i) => {
      failures.set(x.hash, x);
      scenarioOf.set(x.hash, must(scenarios[i], 'the scenario read with each failure'));
    });
  }
  const rows = [...byPlatform].map(([name, tally]) => ({ name, tally }));
  for (const line of renderTable(rows)) io.out(line);
  for (const g of gaps) io.out(`partial: ${g}`);
  for (const x of failures.values()) {
    try {
      storeFailure(o.corpus, x.platform, x.token, must(scenarioOf.get(x.hash), 'the scenario of a merged failure'), x.divergences);
    } catch (e) {
      io.err(`dmadiff: the failure below is not stored: ${e instanceof Error ? e.message : String(e)}`);
    }
    io.out(`FAIL on ${x.platform}: ${x.divergences.map((d) => `step ${d.step} [${d.kind}] ${d.detail}`).join('; ')}`);
    io.out(`  replay: dmadiff replay ${x.token}`);
  }
  const verdict =
    failures.size > 0
      ? `FAIL -- ${failures.size} distinct failure(s) outside the allowlist`
      : gaps.length > 0
        ? `INCONCLUSIVE -- no failure in the shards that finished, but ${gaps.length} share(s) of the search did not run to the end`
        : 'PASS -- no divergence outside the allowlist';
  const record = must(docs[0], 'a shard file (merge takes one or more)').doc.search;
  const summary = { format: 'dmadiff-summary/2', search: record, shards: docs.map((d) => d.doc.shard), complete: gaps.length === 0, gaps, chunks: chunks.size, platforms: rows, failures: [...failures.values()] };
  if (o.out !== undefined) writeAtomic(o.out, `${stableJson(summary)}\n`);
  if (o.markdown !== undefined) writeAtomic(o.markdown, `${markdownSummary(rows, [...failures.values()], gaps, verdict)}\n`);
  const code = failures.size > 0 ? EXIT_FAIL : gaps.length > 0 ? EXIT_INCONCLUSIVE : 0;
  if (o.report !== undefined) {
    const seen = [...failures.values()].map((x) => ({ platform: x.platform, token: x.token, scenario: must(scenarioOf.get(x.hash), 'the scenario of a merged failure'), source: 'search' as const }));
    writeReportsBeside(o.report, reportDoc('merge', verdictWord(code), platformRows(rows, seen), failureReports(seen, o.corpus, record.checkTrace)), io);
  }
  io.out(`merged ${files.length} shard(s): ${chunks.size} chunk(s), ${failures.size} distinct failure(s)`);
  io.out(`verdict: ${verdict}`);
  return code;
}
