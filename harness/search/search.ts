/**
 * The differential search behind `dmadiff gate` and `dmadiff nightly`: for each platform of the
 * matrix, a budget of generated runs in fixed-size chunks, each chunk seeded from the base seed
 * and its number. A shard i/n takes the chunks whose ordinal is i-1 modulo n, so the shards of
 * a budget together run exactly the runs one unsharded search of that budget runs.
 */
import type { SeededBugs } from '../run/paths.js';
import { must } from '../../kernel/assert.js';
import type { Divergence } from '../check/checker.js';
import { scenarioHash } from './corpus.js';
import {
  CHUNK_RUNS,
  COVERAGE_BRANCHES,
  COVERAGE_KEYS,
  LIFECYCLE_CELLS,
  PLATFORM_MATRIX,
  addTally,
  applies,
  chunkSeed,
  emptyTally,
  runChunkInterruptible,
  type NamedPlatform,
  type SearchConfig,
  type Tally,
} from './property.js';
import type { Consumer, Scenario } from '../workload/scenario.js';
import { encodeToken } from './token.js';

export interface SearchOptions {
  seed: number;
  /** runs per platform for the whole (unsharded) search */
  runsPerPlatform: number;
  /** stop starting new chunks after this many seconds per platform (non-deterministic) */
  seconds?: number;
  platforms: readonly NamedPlatform[];
  /** the platforms' positions in the full matrix (they name the chunks and seed them) */
  platformIds: readonly number[];
  consumers: Consumer[];
  maxSteps: number;
  checkTrace: boolean;
  faults: SeededBugs;
  /** compare the incremental reachable sets with the reference after every step */
  paranoid?: boolean;
  shard?: { index: number; count: number };
  /** the gate stops a platform at its first failure; the nightly search goes on */
  stopAtFirstFailure: boolean;
  progress?: (line: string) => void;
  /** called the moment a failure is shrunk (before the search goes on), so it is stored at once */
  onFailure?: (f: FoundFailure) => void;
  /** polled between runs: true stops the search (SIGINT, SIGTERM) */
  stop?: () => boolean;
}

export interface FoundFailure {
  platform: string;
  token: string;
  hash: string;
  scenario: Scenario;
  divergences: Divergence[];
}

export interface PlatformReport {
  name: string;
  tally: Tally;
}

export interface SearchReport {
  platforms: PlatformReport[];
  failures: FoundFailure[];
  /** the chunks this search ran, "platform-id:chunk" */
  chunks: string[];
  /** stopped before its budget was spent (an interrupt): the tallies cover what ran */
  interrupted: boolean;
  /** the chunks this search (or shard) runs when nothing stops it */
  planned: number;
}

/** "1m05s", "42s": a duration for the progress line. */
function duration(ms: number): string {
  const sec = Math.round(ms / 1000);
  return sec >= 60 ? `${Math.floor(sec / 60)}m${String(sec % 60).padStart(2, '0')}s` : `${sec}s`;
}

export async function search(o: SearchOptions): Promise<SearchReport> {
  const chunksPer = Math.ceil(o.runsPerPlatform / CHUNK_RUNS);
  const mine = (pid: number, j: number): boolean => o.shard === undefined || (pid * chunksPer + j) % o.shard.count === o.shard.index - 1;
  const report: SearchReport = { platforms: [], failures: [], chunks: [], interrupted: false, planned: 0 };
  const seen = new Set<string>();
  const stop = o.stop ?? ((): boolean => false);
  // the progress line's ETA: chunks still to run over the pace so far (a gate that stops a
  // platform at its first failure finishes sooner than it says)
  let total = 0;
  o.platformIds.forEach((pid) => {
    for (let j = 0; j < chunksPer; j++) if (mine(pid, j)) total++;
  });
  report.planned = total;
  let done = 0;
  const began = Date.now();
  for (const [k, p] of o.platforms.entries()) {
    const pid = must(o.platformIds[k], 'the matrix id of each platform searched');
    const cfg: SearchConfig = { platform: p, consumers: o.consumers, maxSteps: o.maxSteps, checkTrace: o.checkTrace, faults: o.faults, paranoid: o.paranoid === true };
    const tally = emptyTally();
    const started = Date.now();
    let left = 0;
    for (let j = 0; j < chunksPer; j++) if (mine(pid, j)) left++;
    for (let j = 0; j < chunksPer && !report.interrupted; j++) {
      if (!mine(pid, j)) continue;
      if (o.seconds !== undefined && (Date.now() - started) / 1000 >= o.seconds) break;
      const runs = Math.min(CHUNK_RUNS, o.runsPerPlatform - j * CHUNK_RUNS);
      const seed = chunkSeed(o.seed, pid * 65536 + j);
      const r = await runChunkInterruptible(cfg, seed, runs, stop);
      addTally(tally, r.tally);
      if (r.stopped === true) report.interrupted = true;
      else report.chunks.push(`${pid}:${j}`);
      done++;
      left--;
      const elapsed = Date.now() - began;
      o.progress?.(`${p.name}: chunk ${j + 1}/${chunksPer}, ${tally.runs} runs, ${tally.steps} steps; ${done}/${total} chunks, ${duration(elapsed)} elapsed, ETA ${duration((elapsed / done) * (total - done))}`);
      if (r.failure !== undefined) {
        const hash = scenarioHash(r.failure.scenario);
        if (!seen.has(hash)) {
          seen.add(hash);
          const f: FoundFailure = {
            platform: p.name,
            token: encodeToken(cfg, r.failure.seed, r.failure.path),
            hash,
            scenario: r.failure.scenario,
            divergences: r.failure.divergences,
          };
          report.failures.push(f);
          o.onFailure?.(f);
        }
        if (o.stopAtFirstFailure) {
          total -= left;
          break;
        }
      }
    }
    report.platforms.push({ name: p.name, tally });
    if (report.interrupted) break;
  }
  return report;
}

/** The platform of the matrix a row names (rows of merged shards name matrix platforms too). */
function platformNamed(name: string): NamedPlatform | undefined {
  return PLATFORM_MATRIX.find((p) => p.name === name);
}

/** A coverage count as the table shows it: n/a where the branch cannot occur on that platform. */
function coverageCell(row: PlatformReport, key: string): string {
  const p = platformNamed(row.name);
  if (p !== undefined && !applies(p, key)) return 'n/a';
  return String(row.tally.coverage[key] ?? 0);
}

/**
 * The summary table: platform, runs, steps, divergences (of the kinds checked), allowlisted (by
 * entry), and the runs that hit each branch; then the lifecycle cells, one row each.
 */
export function renderTable(rows: readonly PlatformReport[]): string[] {
  const head = ['platform', 'runs', 'steps', 'divergences', 'allowlisted', 'coverage (runs that hit each branch)'];
  const body = rows.map((r) => [
    r.name,
    String(r.tally.runs),
    String(r.tally.steps),
    String(r.tally.divergences),
    Object.entries(r.tally.allowlisted)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, n]) => `${id} ${n}`)
      .join(', ') || '0',
    COVERAGE_BRANCHES.map((b) => `${b} ${coverageCell(r, b)}`).join(', '),
  ]);
  const widths = head.slice(0, 5).map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]) : i < 4 ? c.padStart(widths[i]) : i === 4 ? c.padEnd(widths[4]) : c)).join('  ');
  const out = [line(head), ...body.map(line)];
  // the lifecycle cells: one row per cell, one column per platform
  const cellW = Math.max(...LIFECYCLE_CELLS.map((c) => c.length), 'lifecycle cell (runs)'.length);
  const colW = rows.map((r) => Math.max(r.name.length, 3));
  out.push('');
  out.push(['lifecycle cell (runs)'.padEnd(cellW), ...rows.map((r, i) => r.name.padStart(colW[i]))].join('  '));
  for (const c of LIFECYCLE_CELLS) out.push([c.padEnd(cellW), ...rows.map((r, i) => coverageCell(r, c).padStart(colW[i]))].join('  '));
  return out;
}

/** The branches and cells that apply on a row's platform and that no run reached. */
export function unhitKeys(r: PlatformReport): string[] {
  const p = platformNamed(r.name);
  return p === undefined ? [] : COVERAGE_KEYS.filter((k) => applies(p, k) && (r.tally.coverage[k] ?? 0) === 0);
}

/** One line per platform with branches or cells never reached ("name: key, key"). */
export function unhit(rows: readonly PlatformReport[]): string[] {
  return rows.flatMap((r) => {
    const missing = unhitKeys(r);
    return missing.length > 0 ? [`${r.name}: ${missing.join(', ')}`] : [];
  });
}
