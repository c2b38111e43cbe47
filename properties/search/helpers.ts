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
  allowlisted: number;
  /** the coverage column: branch name -> runs that hit it */
  coverage: Map<string, number>;
}

const HEADER = /^platform\s+runs\s+steps\s+divergences\s+allowlisted\s+coverage \(runs that hit each branch\)$/;
const ROW = /^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s{2}(.*)$/;

/** The rows of the (first) summary table in the printed output. */
export function parseTable(out: readonly string[]): TableRow[] {
  const h = out.findIndex((l) => HEADER.test(l));
  if (h < 0) throw new Error(`no summary table in:\n${out.join('\n')}`);
  const rows: TableRow[] = [];
  for (let i = h + 1; i < out.length; i++) {
    const m = ROW.exec(out[i]!);
    if (m === null) break;
    const coverage = new Map<string, number>();
    for (const part of m[6]!.split(', ')) {
      const c = /^(\S+) (\d+)$/.exec(part);
      if (c === null) throw new Error(`bad coverage cell "${part}" in "${out[i]}"`);
      coverage.set(c[1]!, Number(c[2]));
    }
    rows.push({ platform: m[1]!, runs: Number(m[2]), steps: Number(m[3]), divergences: Number(m[4]), allowlisted: Number(m[5]), coverage });
  }
  return rows;
}

/** The table lines themselves (header and rows), for byte comparisons. */
export function tableLines(out: readonly string[]): string[] {
  const h = out.findIndex((l) => HEADER.test(l));
  if (h < 0) return [];
  const lines = [out[h]!];
  for (let i = h + 1; i < out.length && ROW.test(out[i]!); i++) lines.push(out[i]!);
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

/** The base search flags every test passes: a fixed seed, a small budget, a fresh corpus. */
export function searchArgs(o: { runs: number; seed: number; platforms: string; consumers: string; corpus: string }): string[] {
  return ['--runs', String(o.runs), '--seed', String(o.seed), '--platforms', o.platforms, '--consumers', o.consumers, '--corpus', o.corpus];
}

/** The coverage columns as the gate must print them, written out here rather than imported. */
export const COVERAGE_COLUMNS = ['bounce', 'superpage', 'rcache-reuse', '32bit-fallback', 'merge', 'no-merge', 'seg-pad', 'cm-flush', 'fq-full', 'fq-timer', 'fault'];

/** What a platform's configuration allows its coverage row to show. */
export interface CoverageShape {
  superpages: boolean;
  cachingMode: boolean;
  /** strict as booted; caching mode forces it on both paths */
  strict: boolean;
}

/**
 * A coverage row: the columns in order, each a run count within [0, runs]; branches the platform
 * cannot take are 0, and the ones every workload reaches (bounce, merge, fault, ...) are hit.
 */
export function expectCoverage(coverage: ReadonlyMap<string, number>, runs: number, p: CoverageShape): void {
  expect([...coverage.keys()]).toEqual(COVERAGE_COLUMNS);
  for (const [branch, n] of coverage) {
    expect(Number.isInteger(n), branch).toBe(true);
    expect(n, branch).toBeGreaterThanOrEqual(0);
    expect(n, branch).toBeLessThanOrEqual(runs);
  }
  const at = (b: string): number => coverage.get(b)!;
  for (const b of ['bounce', 'rcache-reuse', 'merge', 'no-merge', 'fault']) expect(at(b), b).toBeGreaterThan(0);
  // no superpage-capable cap: hardware_largepage_caps() never picks level 2
  if (!p.superpages) expect(at('superpage'), 'superpage').toBe(0);
  // cm-flush is the caching-mode flush of iotlb_sync_map / domain_mapping's notify
  if (p.cachingMode) expect(at('cm-flush'), 'cm-flush').toBeGreaterThan(0);
  else expect(at('cm-flush'), 'cm-flush').toBe(0);
  // strict, or caching mode (intel_iommu_init in both releases forces strict:
  // "Disable batched IOTLB flush" / "IOMMU batching disallowed"): no flush queue at all
  if (p.strict || p.cachingMode) {
    expect(at('fq-full'), 'fq-full').toBe(0);
    expect(at('fq-timer'), 'fq-timer').toBe(0);
  } else {
    expect(at('fq-timer'), 'fq-timer').toBeGreaterThan(0);
  }
}
