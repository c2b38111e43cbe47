/**
 * The long-running commands: gate (is the migration safe?), nightly (one shard of a long
 * search) and replay (a token back into its run); shards.ts merges nightly shards. Output is
 * deterministic for a given seed and budget; timings go only to the progress line. A failure is
 * stored the moment it is shrunk, so an interrupt or a crash later loses nothing found.
 */
import { CommandError, EXIT_BAD_INPUT, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED } from './exit.js';
import { must } from '../../kernel/assert.js';
import { replayCorpus, renderCorpusReplay, type CorpusReplay } from '../search/corpus-replay.js';
import { WriteError, exportScenario, scenarioFileOf, storeFailure, writeAtomic } from '../search/corpus.js';
import { stableJson } from './json.js';
import { bugList, type SeededBugs } from '../run/paths.js';
import { PLATFORM_MATRIX, replayChunk } from '../search/property.js';
import { shardDoc } from '../search/shards.js';
import { renderDivergence } from '../workload/render.js';
import { scenarioToJson, type Consumer } from '../workload/scenario.js';
import { renderTable, search, unhit, type FoundFailure, type SearchReport } from '../search/search.js';
import { decodeToken, TokenError } from '../search/token.js';
import { corpusFailures, corpusRows, failureReports, oneScenarioRow, platformRows, verdictWord, type FailureSeen } from '../../reports/from-search.js';
import { reportDoc, writeReportsBeside } from '../../reports/write.js';
import { buildFailure } from '../../reports/report.js';

export { CommandError, EXIT_BAD_INPUT, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERRUPTED } from './exit.js';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  progress?: (line: string) => void;
  /** the signal that asked the search to stop (SIGINT, SIGTERM), once one did */
  interrupted?: () => string | undefined;
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
  /** remove corpus entries that no longer fail */
  prune: boolean;
  /** unreadable corpus entries do not make the exit non-zero */
  ignoreCorrupt: boolean;
  /** check the incremental reachable sets against the reference after every step */
  paranoid?: boolean;
  /** --report DIR: write the report in every format there */
  report?: string;
}

export function selectPlatforms(names: string[]): { platforms: typeof PLATFORM_MATRIX; ids: number[] } {
  if (names.length === 0) throw new CommandError('--platforms: no platform given');
  const ids = names.map((n) => {
    const i = PLATFORM_MATRIX.findIndex((p) => p.name === n);
    if (i < 0) throw new CommandError(`--platforms: unknown platform "${n}" (known: ${PLATFORM_MATRIX.map((p) => p.name).join(', ')})`);
    return i;
  });
  return { platforms: ids.map((i) => must(PLATFORM_MATRIX[i], 'a platform of the matrix')), ids };
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

/** Replay the applicable corpus entries and print one line each. */
function corpusFirst(f: SearchFlags, io: Io): CorpusReplay {
  const r = replayCorpus(f.corpus, { platforms: f.platforms, consumers: f.consumers, seededBugs: bugList(f.faults), checkTrace: f.checkTrace, prune: f.prune });
  for (const line of renderCorpusReplay(r)) io.out(line);
  return r;
}

/**
 * Print a failure and store it (entry and scenario file). A corpus that cannot be written loses
 * nothing: the reason goes to stderr, and the token and the scenario itself to stdout.
 */
function reportFailure(f: FoundFailure, dir: string, io: Io): void {
  let entry: string | undefined;
  let scen: string | undefined;
  try {
    entry = storeFailure(dir, f.platform, f.token, f.scenario, f.divergences);
    // named only once written: a report must not point at a file that is not there
    const exported = scenarioFileOf(entry);
    exportScenario(exported, f.scenario);
    scen = exported;
  } catch (e) {
    if (!(e instanceof WriteError)) throw e;
    io.err(`dmadiff: the failure below is not stored: ${e.message}`);
  }
  io.out(`FAIL on ${f.platform}: ${f.scenario.steps.length} step(s) after shrinking`);
  for (const d of f.divergences) io.out(`  ${renderDivergence(d)}`);
  const c = brokenConsumer(f);
  if (c !== undefined) io.out(`  consumer that broke equivalence: ${c}`);
  io.out(`  replay:   dmadiff replay ${f.token}`);
  if (entry !== undefined && scen !== undefined) {
    io.out(`  scenario: ${scen}`);
    io.out(`  corpus:   ${entry}`);
  } else {
    io.out(`  scenario (not stored): ${stableJson(scenarioToJson(f.scenario), true)}`);
  }
}

/** The search the flags describe, over the platforms they name; failures are reported and stored as they are found. */
function searchWith(f: SearchFlags, io: Io, how: { shard?: { index: number; count: number }; stopAtFirstFailure: boolean }): Promise<SearchReport> {
  const { platforms, ids } = selectPlatforms(f.platforms);
  const interrupted = io.interrupted;
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
    paranoid: f.paranoid === true,
    ...how,
    ...(io.progress !== undefined ? { progress: io.progress } : {}),
    ...(interrupted !== undefined ? { stop: () => interrupted() !== undefined } : {}),
    onFailure: (x) => reportFailure(x, f.corpus, io),
  });
}

/** The parts of a verdict that the gate and the nightly search share. */
interface Findings {
  corpus: CorpusReplay;
  report: SearchReport;
}

function corpusFailing(x: Findings): Array<{ file: string; token: string }> {
  return x.corpus.verdicts.flatMap((v) => (v.kind === 'failing' ? [{ file: v.file, token: v.token }] : []));
}

function unreadable(x: Findings): number {
  return x.corpus.verdicts.filter((v) => v.kind === 'unreadable').length;
}

/**
 * The verdict lines every search command ends with when something decides it before coverage:
 * INTERRUPTED (exit 5, every token so far), FAIL (exit 1), an unreadable corpus (exit 2 unless
 * --ignore-corrupt). Undefined when none applies.
 */
function settled(x: Findings, f: SearchFlags, io: Io): number | undefined {
  const fromCorpus = corpusFailing(x);
  const tokens = [...fromCorpus.map((c) => c.token), ...x.report.failures.map((r) => r.token)];
  const runs = x.report.platforms.reduce((a, p) => a + p.tally.runs, 0);
  const bad = unreadable(x);
  const badNote = bad > 0 ? `; ${bad} corpus entr${bad === 1 ? 'y' : 'ies'} unreadable` : '';
  const signal = io.interrupted?.();
  if (x.report.interrupted || signal !== undefined) {
    io.out(`verdict: INTERRUPTED by ${signal ?? 'a signal'} -- the search stopped after ${runs} generated runs; ${tokens.length} failure(s) found so far${tokens.length > 0 ? ' (each one already a FAIL; stored as found)' : ''}${badNote}`);
    for (const t of tokens) io.out(`  dmadiff replay ${t}`);
    return EXIT_INTERRUPTED;
  }
  if (tokens.length > 0) {
    io.out(
      `verdict: FAIL -- a driver or a device can tell the two paths apart in a way no allowlist entry explains; the migration is not safe as it stands (consumers: ${f.consumers.join(',')}; ${x.report.failures.length} found by the search, ${fromCorpus.length} from the corpus)${badNote}`,
    );
    return EXIT_FAIL;
  }
  if (bad > 0 && !f.ignoreCorrupt) {
    io.out(
      `verdict: UNREADABLE CORPUS -- ${bad} entr${bad === 1 ? 'y' : 'ies'} of ${f.corpus} could not be read (kept, listed above), so what they hold was not replayed; the search found no divergence outside the allowlist in ${runs} generated runs. Repair or remove them, or accept with --ignore-corrupt`,
    );
    return EXIT_BAD_INPUT;
  }
  return undefined;
}

/**
 * --report DIR: the report of a search in every format. A report that cannot be written is said
 * on stderr and does not change the verdict (the failures are stored already).
 */
function writeSearchReport(command: string, code: number, x: Findings, f: SearchFlags, io: Io): void {
  if (f.report === undefined) return;
  const seen: FailureSeen[] = [...corpusFailures(x.corpus.verdicts), ...x.report.failures.map((r) => ({ platform: r.platform, token: r.token, scenario: r.scenario, source: 'search' as const }))];
  const doc = reportDoc(command, verdictWord(code), [...platformRows(x.report.platforms, seen), ...corpusRows(x.corpus.verdicts, f.ignoreCorrupt)], failureReports(seen, f.corpus, f.checkTrace));
  writeReportsBeside(f.report, doc, io);
}

/** dmadiff gate */
export async function gate(f: SearchFlags, io: Io): Promise<number> {
  selectPlatforms(f.platforms); // bad names are usage errors before the corpus is touched
  const corpus = corpusFirst(f, io);
  const report = await searchWith(f, io, { stopAtFirstFailure: true });
  const code = gateVerdict({ corpus, report }, f, io);
  writeSearchReport('gate', code, { corpus, report }, f, io);
  return code;
}

/** The gate's verdict lines and exit code. */
function gateVerdict(x: Findings, f: SearchFlags, io: Io): number {
  const { report } = x;
  for (const line of renderTable(report.platforms)) io.out(line);
  const done = settled(x, f, io);
  if (done !== undefined) return done;
  const runs = report.platforms.reduce((a, p) => a + p.tally.runs, 0);
  const bad = unreadable(x);
  const ignored = bad > 0 ? `; ${bad} unreadable corpus entr${bad === 1 ? 'y' : 'ies'} ignored (--ignore-corrupt)` : '';
  const missing = unhit(report.platforms);
  if (missing.length > 0 && !f.allowUnhit) {
    io.out(`verdict: INCONCLUSIVE -- no divergence outside the allowlist in ${runs} generated runs, but branches that apply were never reached, so the gate cannot vouch for them${ignored}:`);
    for (const m of missing) io.out(`  ${m}`);
    io.out('  (raise --runs, or accept with --allow-unhit)');
    return EXIT_INCONCLUSIVE;
  }
  io.out(
    `verdict: PASS -- in ${runs} generated runs no driver (consumers: ${f.consumers.join(',')}) or device could tell the two paths apart beyond the allowlisted differences${missing.length > 0 ? ` (unreached branches allowed: ${missing.join('; ')})` : ''}${ignored}`,
  );
  return 0;
}

/** dmadiff nightly --shard i/n: the corpus, then one deterministic share of the search, written as JSON. */
export async function nightly(f: SearchFlags, shard: { index: number; count: number }, outFile: string, io: Io): Promise<number> {
  selectPlatforms(f.platforms);
  const corpus = corpusFirst(f, io);
  const report = await searchWith(f, io, { shard, stopAtFirstFailure: false });
  const failures = [
    ...corpus.verdicts.flatMap((v) => (v.kind === 'failing' ? [{ platform: v.platform, token: v.token, scenario: v.scenario, divergences: v.divergences }] : [])),
    ...report.failures,
  ];
  const doc = shardDoc(f, shard, report, failures);
  writeAtomic(outFile, `${stableJson(doc)}\n`);
  for (const line of renderTable(report.platforms)) io.out(line);
  io.out(`shard ${doc.shard}: ${report.chunks.length} of ${doc.expectedChunks} chunk(s), ${failures.length} failure(s); wrote ${outFile}; failures stored in ${f.corpus}`);
  const done = settled({ corpus, report }, f, io);
  if (done === undefined) io.out(`verdict: PASS -- no divergence outside the allowlist in ${report.platforms.reduce((a, p) => a + p.tally.runs, 0)} generated runs of this shard`);
  writeSearchReport('nightly', done ?? 0, { corpus, report }, f, io);
  return done ?? 0;
}

/** dmadiff replay TOKEN: regenerate the failing run; export its scenario. */
export function replay(token: string, outFile: string | undefined, io: Io, reportDir?: string): number {
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
  if (reportDir !== undefined) {
    const fr = buildFailure({ scenario: f.scenario, platform: decoded.token.platform, source: 'search', token, checkTrace: decoded.cfg.checkTrace, ...(outFile !== undefined ? { scenarioFile: outFile } : {}) });
    writeReportsBeside(reportDir, reportDoc('replay', 'FAIL', [oneScenarioRow(decoded.token.platform, 'platform', fr)], [fr]), io);
  }
  return 1;
}
