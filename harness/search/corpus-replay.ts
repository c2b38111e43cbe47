/**
 * Replaying the failure corpus before a search. Each entry gets one verdict: still failing (with
 * its first divergence), fixed (kept, or removed with --prune), not applicable to the run's flags
 * (naming the flag), unreadable (kept; counted in the verdict), or written by a newer dmadiff.
 */
import type { Divergence } from '../check/checker.js';
import { must } from '../../kernel/assert.js';
import { loadCorpus, removeEntry, type EntryNeeds } from './corpus.js';
import { renderDivergence } from '../workload/render.js';
import { failing, runScenario } from '../run/runner.js';
import type { SeededBug } from '../run/paths.js';
import type { Consumer, Scenario } from '../workload/scenario.js';
import { ScenarioError } from '../workload/fields.js';

/** The flags an entry is judged against. */
export interface ReplayFlags {
  platforms: readonly string[];
  consumers: readonly Consumer[];
  seededBugs: readonly SeededBug[];
  checkTrace: boolean;
  prune: boolean;
}

export type EntryVerdict =
  | { kind: 'failing'; file: string; platform: string; token: string; scenario: Scenario; divergences: Divergence[] }
  | { kind: 'fixed'; file: string; removed: boolean }
  | { kind: 'not-applicable'; file: string; why: string }
  | { kind: 'unreadable'; file: string; why: string }
  | { kind: 'newer'; file: string; format: string };

export interface CorpusReplay {
  dir: string;
  verdicts: EntryVerdict[];
}

/** Why an entry does not apply to these flags (the flag to change), or undefined if it does. */
export function notApplicable(n: EntryNeeds, f: ReplayFlags): string | undefined {
  if (!f.platforms.includes(n.platform)) return `found on platform ${n.platform}, not in --platforms ${f.platforms.join(',')}`;
  const consumers = n.consumers.filter((c) => !f.consumers.includes(c));
  if (consumers.length > 0) return `needs consumer ${consumers.join(',')}, not in --consumers ${f.consumers.join(',')}`;
  const bugs = n.seededBugs.filter((b) => !f.seededBugs.includes(b));
  if (bugs.length > 0) return `needs the seeded bug ${bugs.join(',')} (--broken ${bugs[0]})`;
  if (n.trace && !f.checkTrace) return 'its divergences are trace-accounting ones, not checked under --no-trace';
  return undefined;
}

/** Replay every entry of a corpus directory that applies to the flags. */
export function replayCorpus(dir: string, f: ReplayFlags): CorpusReplay {
  const verdicts: EntryVerdict[] = loadCorpus(dir).map((e): EntryVerdict => {
    if (e.newer !== undefined) return { kind: 'newer', file: e.file, format: e.newer };
    if (e.entry === undefined || e.scenario === undefined) return { kind: 'unreadable', file: e.file, why: e.error ?? 'unreadable' };
    const why = notApplicable(e.entry.needs, f);
    if (why !== undefined) return { kind: 'not-applicable', file: e.file, why };
    let ds: Divergence[];
    try {
      ds = failing(runScenario(e.scenario), f.checkTrace);
    } catch (x) {
      // a step that cannot run (an access outside 64 bits) makes the entry unreadable, not the gate
      if (x instanceof ScenarioError) return { kind: 'unreadable', file: e.file, why: `scenario.${x.message}` };
      throw x;
    }
    if (ds.length > 0) return { kind: 'failing', file: e.file, platform: e.entry.platform, token: e.entry.token, scenario: e.scenario, divergences: ds };
    if (f.prune) removeEntry(e.file);
    return { kind: 'fixed', file: e.file, removed: f.prune };
  });
  return { dir, verdicts };
}

/** A count line, then one line per entry. */
export function renderCorpusReplay(r: CorpusReplay): string[] {
  const lines = r.verdicts.map((v) => {
    switch (v.kind) {
      case 'failing':
        return `corpus ${v.file}: still failing on ${v.platform}: ${renderDivergence(must(v.divergences[0], 'a divergence of a failing entry'))}${v.divergences.length > 1 ? ` (+${v.divergences.length - 1} more)` : ''}`;
      case 'fixed':
        return `corpus ${v.file}: fixed (${v.removed ? 'removed by --prune' : 'kept; --prune removes it'})`;
      case 'not-applicable':
        return `corpus ${v.file}: not applicable: ${v.why}`;
      case 'unreadable':
        return `corpus ${v.file}: unreadable: ${v.why} (kept)`;
      case 'newer':
        return `corpus ${v.file}: written by a newer dmadiff (${v.format}); kept, not replayed`;
    }
  });
  const n = (k: EntryVerdict['kind']): number => r.verdicts.filter((v) => v.kind === k).length;
  lines.unshift(
    `corpus ${r.dir}: ${r.verdicts.length} entr${r.verdicts.length === 1 ? 'y' : 'ies'}: ${n('failing')} still failing, ${n('fixed')} fixed, ${n('not-applicable')} not applicable, ${n('unreadable')} unreadable${n('newer') > 0 ? `, ${n('newer')} newer` : ''}`,
  );
  return lines;
}
