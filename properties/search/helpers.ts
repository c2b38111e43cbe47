/**
 * Shared helpers for the search suites (gate, nightly, merge, replay, corpus).
 *
 * The CLI runs in-process through `main(argv, out, err)` with captured lines. Every command that
 * touches a corpus is given a fresh temporary directory, so nothing here ever reads or writes the
 * repository's .dmadiff/. The parsers below read the CLI's printed output only (the summary table,
 * the failure block); they never compute what the code under test should answer.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { main } from '../../harness/cli.js';
import { PLATFORM_MATRIX } from '../../harness/search/property.js';

export interface CliRun {
  code: number;
  out: string[];
  err: string[];
  /** wall-clock time of the call, for the report comments */
  ms: number;
}

/** Run the CLI in-process; a multi-line write counts as its lines. */
export async function cli(argv: readonly string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const t0 = Date.now();
  const code = await main(
    argv,
    (s) => out.push(...s.split('\n')),
    (s) => err.push(...s.split('\n')),
  );
  return { code, out, err, ms: Date.now() - t0 };
}

/** Temporary directories for one test file; `dispose` removes them all. */
export class TmpDirs {
  private readonly made: string[] = [];

  /** A fresh, empty directory under the OS temp dir. */
  fresh(tag = 'search'): string {
    const d = mkdtempSync(join(tmpdir(), `dmadiff-${tag}-`));
    this.made.push(d);
    return d;
  }

  dispose(): void {
    for (const d of this.made) rmSync(d, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the printed summary table

export interface TableRow {
  platform: string;
  runs: number;
  steps: number;
  divergences: number;
  /** all allowlisted divergences, and by entry ("D1" -> n, "D3+D4" -> n) */
  allowlisted: number;
  allowlistedBy: Map<string, number>;
  /** the coverage column: branch name -> runs that hit it, or 'n/a' */
  coverage: Map<string, number | 'n/a'>;
}

const HEADER = /^platform\s+runs\s+steps\s+divergences\s+allowlisted\s+coverage \(runs that hit each branch\)$/;
const ROW = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s{2}((?:D\d+(?:\+D\d+)* \d+(?:, D\d+(?:\+D\d+)* \d+)*)|0)\s+(bounce .*)$/;
const LIFE_HEADER = /^lifecycle cell \(runs\)\s+(.*)$/;

function count(v: string, where: string): number | 'n/a' {
  if (v === 'n/a') return v;
  if (!/^\d+$/.test(v)) throw new Error(`bad count "${v}" in "${where}"`);
  return Number(v);
}

/** The rows of the (first) summary table in the printed output. */
export function parseTable(out: readonly string[]): TableRow[] {
  const h = out.findIndex((l) => HEADER.test(l));
  if (h < 0) throw new Error(`no summary table in:\n${out.join('\n')}`);
  const rows: TableRow[] = [];
  for (let i = h + 1; i < out.length; i++) {
    const m = ROW.exec(out[i]!);
    if (m === null) break;
    const coverage = new Map<string, number | 'n/a'>();
    for (const part of m[6]!.split(', ')) {
      const c = /^(\S+) (\S+)$/.exec(part);
      if (c === null) throw new Error(`bad coverage cell "${part}" in "${out[i]}"`);
      coverage.set(c[1]!, count(c[2]!, out[i]!));
    }
    const allowlistedBy = new Map<string, number>();
    if (m[5] !== '0') for (const part of m[5]!.split(', ')) allowlistedBy.set(part.split(' ')[0]!, Number(part.split(' ')[1]));
    const allowlisted = [...allowlistedBy.values()].reduce((a, b) => a + b, 0);
    rows.push({ platform: m[1]!, runs: Number(m[2]), steps: Number(m[3]), divergences: Number(m[4]), allowlisted, allowlistedBy, coverage });
  }
  return rows;
}

/** The lifecycle table: cell -> platform -> runs (or 'n/a'). */
export function parseLifecycle(out: readonly string[]): Map<string, Map<string, number | 'n/a'>> {
  const h = out.findIndex((l) => LIFE_HEADER.test(l));
  if (h < 0) throw new Error(`no lifecycle table in:\n${out.join('\n')}`);
  const platforms = LIFE_HEADER.exec(out[h]!)![1]!.trim().split(/\s+/);
  const cells = new Map<string, Map<string, number | 'n/a'>>();
  for (let i = h + 1; i < out.length; i++) {
    const parts = out[i]!.trim().split(/\s+/);
    if (parts.length !== platforms.length + 1 || !parts[0]!.includes('/')) break;
    cells.set(parts[0]!, new Map(platforms.map((p, k) => [p, count(parts[k + 1]!, out[i]!)])));
  }
  return cells;
}

/** The table lines themselves (summary and lifecycle tables), for byte comparisons. */
export function tableLines(out: readonly string[]): string[] {
  const h = out.findIndex((l) => HEADER.test(l));
  if (h < 0) return [];
  const lines: string[] = [];
  for (let i = h; i < out.length && !out[i]!.startsWith('verdict') && !out[i]!.startsWith('FAIL') && !out[i]!.startsWith('shard') && !out[i]!.startsWith('merged'); i++) lines.push(out[i]!);
  return lines;
}

// ---------------------------------------------------------------- the printed failure block

export interface PrintedFailure {
  platform: string;
  steps: number;
  token: string;
  scenario: string;
  corpus: string;
}

/** Every "FAIL on PLATFORM" block of a gate's output. */
export function printedFailures(out: readonly string[]): PrintedFailure[] {
  const found: PrintedFailure[] = [];
  out.forEach((l, i) => {
    const m = /^FAIL on (\S+): (\d+) step\(s\) after shrinking$/.exec(l);
    if (m === null) return;
    const rest = out.slice(i + 1);
    const end = rest.findIndex((x) => !x.startsWith('  '));
    const block = end < 0 ? rest : rest.slice(0, end);
    const pick = (re: RegExp): string => {
      for (const b of block) {
        const x = re.exec(b);
        if (x !== null) return x[1]!;
      }
      throw new Error(`no ${re} in failure block:\n${block.join('\n')}`);
    };
    found.push({
      platform: m[1]!,
      steps: Number(m[2]),
      token: pick(/^ {2}replay: {3}dmadiff replay (\S+)$/),
      scenario: pick(/^ {2}scenario: (\S+)$/),
      corpus: pick(/^ {2}corpus: {3}(\S+)$/),
    });
  });
  return found;
}

// ---------------------------------------------------------------- exported scenario files

export interface StepJson {
  op: string;
  [field: string]: unknown;
}

export interface ScenarioJson {
  format: string;
  platform: Record<string, unknown>;
  devices: Array<Record<string, unknown>>;
  reserved: unknown[];
  steps: StepJson[];
}

export function readScenarioFile(path: string): ScenarioJson {
  return JSON.parse(readFileSync(path, 'utf8')) as ScenarioJson;
}

/** A one-line rendering of a scenario's steps, for failure messages and the report comments. */
export function stepList(s: ScenarioJson): string {
  return s.steps
    .map((st) => {
      const { op, ...rest } = st;
      return `${op} ${JSON.stringify(rest)}`;
    })
    .join(' ; ');
}

/**
 * The base search flags every test passes: a fixed seed, a small budget, a fresh corpus, and
 * --allow-unhit (a small budget need not reach every branch; coverage.test.ts checks the full one).
 */
export function searchArgs(o: { runs: number; seed: number; platforms: string; consumers: string; corpus: string }): string[] {
  return ['--runs', String(o.runs), '--seed', String(o.seed), '--platforms', o.platforms, '--consumers', o.consumers, '--corpus', o.corpus, '--allow-unhit'];
}

/** The coverage columns as the gate must print them, written out here rather than imported. */
export const COVERAGE_COLUMNS = [
  'bounce',
  'superpage',
  'rcache-reuse',
  '32bit-fallback',
  'merge',
  'no-merge',
  'seg-pad',
  'cm-flush',
  'fq-full',
  'fq-timer',
  'fault',
  'rcache-flush',
  'iova-retry',
  'depot-flush',
  'legacy-only-failure',
  'rounded-tail',
];

/** The 24 lifecycle cells, written out: direction x trusted/untrusted x single/sg x sync kind. */
export const LIFECYCLE_ROWS: string[] = [];
for (const dir of ['to_device', 'from_device', 'bidirectional']) for (const t of ['trusted', 'untrusted']) for (const sh of ['single', 'sg']) for (const k of ['for_cpu', 'for_device']) LIFECYCLE_ROWS.push(`${dir}/${t}/${sh}/${k}`);

/** What a platform's configuration allows its coverage row to show. */
export interface CoverageShape {
  superpages: boolean;
  cachingMode: boolean;
  /** strict as booted; caching mode forces it on both paths */
  strict: boolean;
  tight32: boolean;
  exhaust: boolean;
}

/** The coverage shape of a matrix platform, read from its configuration. */
export function coverageShape(name: string): CoverageShape {
  const np = PLATFORM_MATRIX.find((x) => x.name === name)!;
  const p = np.platform;
  return { superpages: p.superpages.length > 0, cachingMode: p.cachingMode, strict: p.strict, tight32: np.tight32 === true, exhaust: np.exhaust === true };
}

/** Which columns can occur on a platform, from its configuration (the rules README states). */
export function applicable(p: CoverageShape): Set<string> {
  if (p.exhaust) return new Set(['bounce', 'rcache-reuse', '32bit-fallback', 'rcache-flush', 'iova-retry', 'depot-flush', 'legacy-only-failure', 'rounded-tail']);
  const s = new Set(['bounce', 'rcache-reuse', 'merge', 'no-merge', 'seg-pad', 'fault']);
  if (p.superpages) s.add('superpage');
  if (p.tight32) s.add('32bit-fallback');
  if (p.cachingMode) s.add('cm-flush');
  if (!p.strict && !p.cachingMode) {
    s.add('fq-full');
    s.add('fq-timer');
  }
  return s;
}

/**
 * A coverage row: the columns in order; n/a exactly where the branch cannot occur, a run count
 * within [0, runs] elsewhere; with `allHit` (a PASS without --allow-unhit) every applicable one > 0.
 */
export function expectCoverage(coverage: ReadonlyMap<string, number | 'n/a'>, runs: number, p: CoverageShape, allHit = false): void {
  expect([...coverage.keys()]).toEqual(COVERAGE_COLUMNS);
  const can = applicable(p);
  for (const [branch, n] of coverage) {
    if (!can.has(branch)) {
      expect(n, branch).toBe('n/a');
      continue;
    }
    expect(typeof n, branch).toBe('number');
    expect(n as number, branch).toBeGreaterThanOrEqual(allHit ? 1 : 0);
    expect(n as number, branch).toBeLessThanOrEqual(runs);
  }
}
