/**
 * Runs a scenario on both paths side by side and produces the dmadiff-result/1 document: one
 * result per step per path, each path's trace and kernel log, and the divergences the checker
 * found (with the allowlist entry that recognises each, if any).
 */
import { formatTimestamp } from '../../kernel/clock.js';
import type { PathStats } from '../../platform/dma-api.js';
import type { TraceEvent } from '../../kernel/trace.js';
import type { SeededBugs } from './paths.js';
import { allowlisted } from '../check/allowlist.js';
import { ReachableWatch, TraceWatch, compareResults, type Divergence } from '../check/checker.js';
import { checkSgResult } from '../check/sg-result.js';
import { IovaFitWatch, RoundedTailWatch } from '../check/exhaustion.js';
import { checkTraced } from '../check/fidelity.js';
import { computeReachable, diffReachable } from '../check/observe.js';
import { ReachTracker } from '../check/reach-tracker.js';
import { PathRunner, type StepResult } from './path-runner.js';
import { bugSwitches, createPath, type PathName } from './paths.js';
import type { Scenario } from '../workload/scenario.js';
import { checkViews } from '../check/views.js';

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
  /** compare the incremental reachable sets with the reference after every step */
  paranoid?: boolean;
  /** a seeded bug of the reachable-set tracker (the test that --paranoid can fail) */
  trackerBug?: 'ignoreIotlbEvents';
  /** told what each path's trace events of every step account for (reports.ts) */
  onAccount?: (step: number, legacy: string[], generic: string[]) => void;
}


/**
 * A scenario running on both paths, one step at a time: the checker's watches keep their state
 * between steps, so a driver's long life (and a benchmark's set-up) can be stepped through.
 */
export class Differential {
  readonly legacy: PathRunner;
  readonly generic: PathRunner;
  readonly divergences: Divergence[] = [];
  private readonly lTracker: ReachTracker;
  private readonly gTracker: ReachTracker;
  private readonly reach: ReachableWatch;
  private readonly trace: TraceWatch;
  private readonly fits = new IovaFitWatch();
  private readonly tails = new RoundedTailWatch();
  private roundedTailUses = 0;
  private readonly lSteps: StepResult[] = [];
  private readonly gSteps: StepResult[] = [];
  private next = 0;
  private readonly compareOpts: { strictIova: boolean };

  constructor(
    readonly s: Scenario,
    private readonly opts: RunOptions = {},
  ) {
    this.compareOpts = { strictIova: opts.strictIova === true };
    const faults: SeededBugs = { ...bugSwitches(s.seededBugs ?? []), ...opts.faults };
    this.legacy = new PathRunner(createPath('legacy-intel', s, faults), s);
    this.generic = new PathRunner(createPath('dma-iommu', s, faults), s);
    this.lTracker = new ReachTracker(this.legacy.model, opts.trackerBug);
    this.gTracker = new ReachTracker(this.generic.model, opts.trackerBug);
    this.reach = new ReachableWatch(this.lTracker, this.gTracker);
    this.trace = new TraceWatch(this.legacy, this.generic, this.lTracker, this.gTracker, opts.onAccount);
  }

  private report(ds: Divergence[]): void {
    if (ds.length === 0) return;
    // allowlist predicates look at the mappings as they are when the divergence appears
    const ctx = { legacy: this.legacy.mappings, generic: this.generic.mappings };
    for (const d of ds) {
      const id = allowlisted(d, ctx);
      if (id !== undefined) d.allowlisted = id;
      this.divergences.push(d);
    }
  }

  /** Run the next step on both paths and check it. */
  step(): void {
    const i = this.next++;
    const step = this.s.steps[i]!;
    const { legacy, generic } = this;
    const lt = legacy.model.machine.trace;
    const gt = generic.model.machine.trace;
    const lFrom = lt.events.length;
    const gFrom = gt.events.length;
    const l = legacy.run(i, step);
    const g = generic.run(i, step);
    this.lSteps.push(l);
    this.gSteps.push(g);
    // the exhaustion check first: allowlist entries read what it found about a 6.1 failure
    const fit = this.fits.check(i, step, this.s, generic);
    this.report(compareResults(i, step, l, g, legacy, generic, this.compareOpts));
    if ('traced' in step) this.report(checkTraced(i, step, l, g));
    if (step.op === 'map_sg') {
      this.report(checkSgResult('legacy-intel', legacy.model, legacy.mappings.get(step.as)!, i));
      this.report(checkSgResult('dma-iommu', generic.model, generic.mappings.get(step.as)!, i));
    }
    // the device views read the trackers' probes: bring them up to date first
    this.lTracker.update();
    this.gTracker.update();
    this.report(checkViews(i, step, legacy, generic, this.lTracker, this.gTracker));
    this.report(fit);
    if (this.tails.check(step, generic)) this.roundedTailUses++;
    this.report(this.reach.check(i, legacy.model));
    this.report(this.trace.check(i, step, lt.events, lFrom, gt.events, gFrom));
    if (this.opts.paranoid === true) this.paranoid(i);
  }

  /**
   * --paranoid: the incrementally kept reachable sets against the reference computed from
   * scratch, both paths, every device; a difference is a bug of dmadiff (an internal error).
   */
  paranoid(i: number): void {
    for (const [name, t, model] of [
      ['legacy-intel', this.lTracker, this.legacy.model],
      ['dma-iommu', this.gTracker, this.generic.model],
    ] as const) {
      t.update();
      model.devices.forEach((dev, k) => {
        const diff = diffReachable(computeReachable(model, dev), t.reachable(k));
        if (diff !== null) {
          throw new Error(`--paranoid: after step ${i}, the reachable set of ${dev.name} on ${name} kept incrementally differs from the one computed from scratch: ${JSON.stringify(diff)}`);
        }
      });
    }
  }

  /** The steps left. */
  get remaining(): number {
    return this.s.steps.length - this.next;
  }

  /** After the last step: the end-state check, and the result document. */
  finish(): ResultDoc {
    this.report(endState(this.s, this.legacy, this.generic));
    return {
      format: RESULT_FORMAT,
      paths: { 'legacy-intel': pathResult(this.legacy, this.lSteps), 'dma-iommu': pathResult(this.generic, this.gSteps) },
      divergences: this.divergences,
      stats: { 'legacy-intel': this.legacy.model.stats(), 'dma-iommu': this.generic.model.stats() },
      roundedTailUses: this.roundedTailUses,
    };
  }
}

export function runScenario(s: Scenario, opts: RunOptions = {}): ResultDoc {
  const d = new Differential(s, opts);
  while (d.remaining > 0) d.step();
  return d.finish();
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

/**
 * A path's part of the result. The trace is rendered (a timestamp formatted per event) only when
 * read -- by --json, a report, a test -- not by every run of a search, which never looks. A class
 * with a getter rather than an accessor defined on each object: an accessor's closure would live
 * in the object's hidden class, and the hidden classes would hold every finished run (its whole
 * machine) until the next full collection.
 */
class LazyPathResult implements PathResult {
  private rendered: TraceJson[] | undefined;

  constructor(
    readonly steps: StepResult[],
    readonly log: string[],
    private readonly events: readonly TraceEvent[],
  ) {}

  get trace(): TraceJson[] {
    return (this.rendered ??= this.events.filter((e) => e.step >= 0).map((e) => ({ step: e.step, cpu: e.cpu, ts: formatTimestamp(e.tsNs), event: e.event, text: e.text })));
  }

  /** JSON (and structured copies) see the three fields, trace rendered */
  toJSON(): PathResult {
    return { steps: this.steps, log: this.log, trace: this.trace };
  }
}

function pathResult(r: PathRunner, steps: StepResult[]): PathResult {
  const m = r.model.machine;
  return new LazyPathResult(steps, m.log.lines.map((l) => l.text), m.trace.events);
}

/**
 * Divergences that fail a gate: those no allowlist entry recognises, less the trace ones when
 * the trace check is switched off (--no-trace).
 */
export function failing(doc: ResultDoc, checkTrace = true): Divergence[] {
  return doc.divergences.filter((d) => failsGate(d, checkTrace));
}

/** Whether a divergence fails the gate: not allowlisted, and not a trace one under --no-trace. */
export function failsGate(d: Divergence, checkTrace = true): boolean {
  return d.allowlisted === undefined && (checkTrace || d.kind !== 'trace');
}
