/**
 * Runs a scenario on both paths side by side and produces the dmadiff-result/1 document: one
 * result per step per path, each path's trace and kernel log, and the divergences the checker
 * found (with the allowlist entry that recognises each, if any).
 */
import { formatTimestamp } from '../kernel/clock.js';
import type { PathStats } from '../kernel/dma-api.js';
import type { SeededBugs } from './paths.js';
import { allowlisted } from './allowlist.js';
import { ReachableWatch, TraceWatch, checkSgResult, compareResults, type Divergence } from './checker.js';
import { IovaFitWatch, usesRoundedTail } from './exhaustion.js';
import { PathRunner, type StepResult } from './path-runner.js';
import { bugSwitches, createPath, type PathName } from './paths.js';
import type { Scenario } from './scenario.js';
import { checkViews } from './views.js';

export const RESULT_FORMAT = 'dmadiff-result/1';

export interface TraceJson {
  step: number;
  cpu: number;
  ts: string;
  event: string;
  text: string;
}

export interface PathResult {
  steps: StepResult[];
  trace: TraceJson[];
  log: string[];
}

export interface ResultDoc {
  format: typeof RESULT_FORMAT;
  paths: Record<PathName, PathResult>;
  divergences: Divergence[];
  /** what each path counted (rcache hits, bounces, flushes...), for coverage reports */
  stats: Record<PathName, PathStats>;
  /** what the harness saw happen: steps whose 6.1 mapping used the rounded tail of another (exhaustion.ts) */
  roundedTailUses: number;
}

export interface RunOptions {
  strictIova?: boolean;
  /** seeded bugs on top of those the scenario names (tests of the checker only) */
  faults?: SeededBugs;
}

export function runScenario(s: Scenario, opts: RunOptions = {}): ResultDoc {
  const faults: SeededBugs = { ...bugSwitches(s.seededBugs ?? []), ...opts.faults };
  const legacy = new PathRunner(createPath('legacy-intel', s, faults), s);
  const generic = new PathRunner(createPath('dma-iommu', s, faults), s);
  const divergences: Divergence[] = [];
  const reach = new ReachableWatch();
  const trace = new TraceWatch(legacy, generic);
  const fits = new IovaFitWatch();
  let roundedTailUses = 0;
  const lSteps: StepResult[] = [];
  const gSteps: StepResult[] = [];
  const lt = legacy.model.machine.trace;
  const gt = generic.model.machine.trace;
  // allowlist predicates look at the mappings as they are when the divergence appears
  const ctx = { legacy: legacy.mappings, generic: generic.mappings };
  const report = (ds: Divergence[]): void => {
    for (const d of ds) {
      const id = allowlisted(d, ctx);
      if (id !== undefined) d.allowlisted = id;
      divergences.push(d);
    }
  };
  s.steps.forEach((step, i) => {
    const lFrom = lt.events.length;
    const gFrom = gt.events.length;
    const l = legacy.run(i, step);
    const g = generic.run(i, step);
    lSteps.push(l);
    gSteps.push(g);
    // the exhaustion check first: allowlist entries read what it found about a 6.1 failure
    const fit = fits.check(i, step, s, generic);
    report(compareResults(i, step, l, g, legacy, generic, { strictIova: opts.strictIova === true }));
    if (step.op === 'map_sg') {
      report(checkSgResult('legacy-intel', legacy.model, legacy.mappings.get(step.as)!, i));
      report(checkSgResult('dma-iommu', generic.model, generic.mappings.get(step.as)!, i));
    }
    report(checkViews(i, step, legacy, generic));
    report(fit);
    if (usesRoundedTail(step, generic)) roundedTailUses++;
    report(reach.check(i, legacy.model, generic.model));
    report(trace.check(i, step, lt.events.slice(lFrom), gt.events.slice(gFrom)));
  });
  report(endState(s, legacy, generic));
  return {
    format: RESULT_FORMAT,
    paths: { 'legacy-intel': pathResult(legacy, lSteps), 'dma-iommu': pathResult(generic, gSteps) },
    divergences,
    stats: { 'legacy-intel': legacy.model.stats(), 'dma-iommu': generic.model.stats() },
    roundedTailUses,
  };
}

/**
 * The end state: once every mapping is gone, let the flush-queue timer run and require that
 * nothing is left -- no live IOVA, no present PTE, no busy swiotlb slot, nothing queued.
 */
function endState(s: Scenario, legacy: PathRunner, generic: PathRunner): Divergence[] {
  const anyLive = [...legacy.mappings.values(), ...generic.mappings.values()].some((m) => m.live);
  if (anyLive || s.steps.length === 0) return [];
  const summary = (r: PathRunner): { liveIovas: number; presentPtes: number; busySwiotlbSlots: number; queued: number } => {
    r.model.machine.passFlushQueueTimeout();
    const k = r.model.leaks();
    return { liveIovas: k.liveIovas.length, presentPtes: k.presentPtes.length, busySwiotlbSlots: k.busySwiotlbSlots, queued: k.queued };
  };
  const l = summary(legacy);
  const g = summary(generic);
  const clean = (x: typeof l): boolean => x.liveIovas + x.presentPtes + x.busySwiotlbSlots + x.queued === 0;
  if (clean(l) && clean(g)) return [];
  const who = [clean(l) ? '' : 'legacy', clean(g) ? '' : 'generic'].filter((x) => x !== '').join(' and ');
  return [{ step: s.steps.length, kind: 'leak', detail: `after every mapping is gone and the queues drained, ${who} still holds IOVAs, PTEs, slots or queue entries`, legacy: l, generic: g }];
}

function pathResult(r: PathRunner, steps: StepResult[]): PathResult {
  const m = r.model.machine;
  return {
    steps,
    trace: m.trace.events
      .filter((e) => e.step >= 0)
      .map((e) => ({ step: e.step, cpu: e.cpu, ts: formatTimestamp(e.tsNs), event: e.event, text: e.text })),
    log: m.log.lines.map((l) => l.text),
  };
}

/**
 * Divergences that fail a gate: those no allowlist entry recognises, less the trace ones when
 * the trace check is switched off (--no-trace).
 */
export function failing(doc: ResultDoc, checkTrace = true): Divergence[] {
  return doc.divergences.filter((d) => d.allowlisted === undefined && (checkTrace || d.kind !== 'trace'));
}
