/**
 * The report of a search (gate, nightly, merge): one coverage row per platform and per corpus
 * entry that still fails, and the full report of every failure, rebuilt from its scenario.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { EntryVerdict } from '../harness/search/corpus-replay.js';
import { EXIT_BAD_INPUT, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PASS } from '../harness/cli/exit.js';
import type { Scenario } from '../harness/workload/scenario.js';
import { unhitKeys, type PlatformReport } from '../harness/search/search.js';
import { scenarioFileOf, scenarioHash } from '../harness/search/corpus.js';
import { buildFailure } from './report.js';
import type { CoverageRow, FailureReport } from './types.js';

export interface FailureSeen {
  platform: string;
  token: string;
  scenario: Scenario;
  source: 'search' | 'corpus';
  /** the corpus file the failure is (or was) stored in */
  file?: string;
}

const VERDICT_WORDS: Readonly<Record<number, string>> = {
  [EXIT_PASS]: 'PASS',
  [EXIT_FAIL]: 'FAIL',
  [EXIT_BAD_INPUT]: 'UNREADABLE CORPUS',
  [EXIT_INTERNAL]: 'INTERNAL ERROR',
  [EXIT_INCONCLUSIVE]: 'INCONCLUSIVE',
  [EXIT_INTERRUPTED]: 'INTERRUPTED',
};

/** The verdict word of an exit code (exit.ts). */
export function verdictWord(code: number): string {
  return VERDICT_WORDS[code] ?? `EXIT ${code}`;
}

export function platformRows(rows: readonly PlatformReport[], seen: readonly FailureSeen[]): CoverageRow[] {
  return rows.map((r) => {
    const mine = seen.filter((x) => x.source === 'search' && x.platform === r.name);
    return {
      name: r.name,
      kind: 'platform',
      runs: r.tally.runs,
      steps: r.tally.steps,
      failures: mine.length,
      allowlisted: { ...r.tally.allowlisted },
      unhit: unhitKeys(r),
      tokens: mine.map((x) => x.token),
      failureIds: mine.map((x) => scenarioHash(x.scenario)),
    };
  });
}

/** `ignoreCorrupt`: --ignore-corrupt, under which an unreadable entry does not fail the verdict */
export function corpusRows(verdicts: readonly EntryVerdict[], ignoreCorrupt: boolean): CoverageRow[] {
  return verdicts.flatMap((v): CoverageRow[] => {
    if (v.kind === 'not-applicable' || v.kind === 'newer') return [];
    const failingHere = v.kind === 'failing';
    return [
      {
        name: v.file,
        kind: 'corpus',
        runs: v.kind === 'unreadable' ? 0 : 1,
        steps: failingHere ? v.scenario.steps.length : 0,
        failures: failingHere ? 1 : 0,
        allowlisted: {},
        unhit: v.kind === 'unreadable' ? [`unreadable: ${v.why}`] : [],
        tokens: failingHere ? [v.token] : [],
        failureIds: failingHere ? [scenarioHash(v.scenario)] : [],
        ...(v.kind === 'unreadable' ? { unreadable: { why: v.why, failsVerdict: !ignoreCorrupt } } : {}),
      },
    ];
  });
}

export function corpusFailures(verdicts: readonly EntryVerdict[]): FailureSeen[] {
  return verdicts.flatMap((v) => (v.kind === 'failing' ? [{ platform: v.platform, token: v.token, scenario: v.scenario, source: 'corpus' as const, file: v.file }] : []));
}

/** The row of a report about one scenario (replay, scenario, report): one run, its failure if it has one. */
export function oneScenarioRow(name: string, kind: CoverageRow['kind'], f: FailureReport): CoverageRow {
  const fails = f.focus.length > 0;
  return { name, kind, runs: 1, steps: f.steps.length, failures: fails ? 1 : 0, allowlisted: {}, unhit: [], tokens: fails && f.token !== undefined ? [f.token] : [], failureIds: fails ? [f.id] : [] };
}

/** Each failure's report, once per scenario. */
export function failureReports(seen: readonly FailureSeen[], corpusDir: string, checkTrace: boolean): FailureReport[] {
  const out = new Map<string, FailureReport>();
  for (const x of seen) {
    const id = scenarioHash(x.scenario);
    if (out.has(id)) continue;
    // the scenario file exported beside the stored entry, if it was written (merge stores none,
    // and a store can fail); a corpus entry names its own file
    const exported = scenarioFileOf(join(corpusDir, `${id}.json`));
    const scenarioFile = x.source === 'search' ? (existsSync(exported) ? exported : undefined) : x.file;
    out.set(id, buildFailure({ scenario: x.scenario, platform: x.platform, source: x.source, token: x.token, checkTrace, ...(scenarioFile !== undefined ? { scenarioFile } : {}) }));
  }
  return [...out.values()];
}
