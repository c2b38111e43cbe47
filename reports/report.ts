/**
 * Builds the divergence report of a failing scenario: the scenario is run again on both paths,
 * step by step, and at the step of each divergence that fails the gate the live state is read --
 * each path's trace events with what they account for, both kernel logs, a walk of every IOVA
 * involved, and the physical pages behind a reachable-set or exposure difference.
 */
import { diffArrays } from 'diff';
import type { Device } from '../kernel/device.js';
import type { Divergence } from '../harness/check/checker.js';
import type { Mapping, PathRunner } from '../harness/run/path-runner.js';
import { describeResult, describeStep } from '../harness/workload/render.js';
import { Differential, failing, failsGate, type ResultDoc } from '../harness/run/runner.js';
import { scenarioToJson, type Scenario } from '../harness/workload/scenario.js';
import { scenarioHash } from '../harness/search/corpus.js';
import { VTD_PAGE_SIZE } from '../vtd/regs.js';
import { decodeFaultLine } from './fault-line.js';
import { attributePage } from './attribute.js';
import { walkIova } from './walk.js';
import type { DivergenceFocus, DivergenceRow, FailureReport, LogLine, PathId, ReachPage, TraceDiffRow, TraceLine, Walk } from './types.js';
import { iovaPfn } from '../kernel/bits.js';
import { must } from '../kernel/assert.js';

export interface FailureInput {
  scenario: Scenario;
  platform: string;
  source: FailureReport['source'];
  token?: string;
  scenarioFile?: string;
  /** trace divergences fail the gate (false under --no-trace) */
  checkTrace?: boolean;
  /** IOVA values are compared too (scenario --strict-iova): the report must judge as the run did */
  strictIova?: boolean;
  /** the reachable sets checked against a recomputation after every step (scenario --paranoid) */
  paranoid?: boolean;
}

/** IOVAs walked per path and divergence, at most (a shrunk scenario names few) */
const MAX_WALKS = 4;

/** The report of one failing scenario. */
export function buildFailure(f: FailureInput): FailureReport {
  return buildFailureWithResult(f).report;
}

/**
 * The report of one scenario and the result document of the run it was built from (the same
 * document runScenario gives: the report only watches the run), so that a command printing
 * both runs the scenario once.
 */
export function buildFailureWithResult(f: FailureInput): { report: FailureReport; result: ResultDoc } {
  const accounts = new Map<number, { legacy: string[]; generic: string[] }>();
  const d = new Differential(f.scenario, { strictIova: f.strictIova === true, paranoid: f.paranoid === true, onAccount: (i, legacy, generic) => accounts.set(i, { legacy, generic }) });
  const focus: DivergenceFocus[] = [];
  const checkTrace = f.checkTrace !== false;
  const fails = (x: Divergence): boolean => failsGate(x, checkTrace);
  while (d.remaining > 0) {
    const before = d.divergences.length;
    d.step();
    d.divergences.forEach((x, k) => {
      if (k >= before && fails(x)) focus.push(focusOf(f.scenario, d, x, k, accounts));
    });
  }
  const doc = d.finish();
  // the end-state check comes after the last step
  doc.divergences.forEach((x, k) => {
    if (x.step >= f.scenario.steps.length && fails(x)) focus.push(focusOf(f.scenario, d, x, k, accounts));
  });
  const divergences: DivergenceRow[] = doc.divergences.map((x) => ({
    step: x.step,
    kind: x.kind,
    detail: x.detail,
    ...(x.allowlisted !== undefined ? { allowlisted: x.allowlisted } : {}),
    fails: fails(x),
    ...(x.map !== undefined ? { map: x.map } : {}),
    ...(x.device !== undefined ? { device: x.device } : {}),
  }));
  const first = failing(doc, checkTrace)[0];
  const l = doc.paths['legacy-intel'].steps;
  const g = doc.paths['dma-iommu'].steps;
  const report: FailureReport = {
    id: scenarioHash(f.scenario),
    title: first === undefined ? `no divergence outside the allowlist on ${f.platform}` : `FAIL on ${f.platform}: step ${first.step} [${first.kind}] ${first.detail}`,
    platform: f.platform,
    source: f.source,
    ...(f.token !== undefined ? { token: f.token } : {}),
    ...(f.scenarioFile !== undefined ? { scenarioFile: f.scenarioFile } : {}),
    scenario: scenarioToJson(f.scenario),
    steps: f.scenario.steps.map((st, i) => ({
      index: i,
      call: describeStep(st, f.scenario.imported),
      legacy: describeResult(must(l[i], 'the legacy result of each step')),
      generic: describeResult(must(g[i], 'the generic result of each step')),
      divergences: doc.divergences.flatMap((x, k) => (x.step === i ? [k] : [])),
    })),
    divergences,
    focus,
  };
  return { report, result: doc };
}

/** The steps a divergence involves: its own, and the call that made the mapping it names. */
function involvedSteps(s: Scenario, x: Divergence): number[] {
  const out = new Set<number>();
  if (x.map !== undefined) {
    const made = s.steps.findIndex((st) => 'as' in st && st.as === x.map);
    if (made >= 0 && made <= x.step) out.add(made);
  }
  if (x.step < s.steps.length) out.add(x.step);
  return [...out].sort((a, b) => a - b);
}

function focusOf(s: Scenario, d: Differential, x: Divergence, k: number, accounts: ReadonlyMap<number, { legacy: string[]; generic: string[] }>): DivergenceFocus {
  const steps = involvedSteps(s, x);
  return {
    divergence: k,
    steps,
    trace: { legacy: traceLines(d.legacy, steps), generic: traceLines(d.generic, steps), diff: traceDiff(steps, accounts) },
    log: { legacy: logLines(d.legacy, x.step), generic: logLines(d.generic, x.step) },
    walks: [...walksOf(d.legacy, 'legacy-intel', x, 'legacy'), ...walksOf(d.generic, 'dma-iommu', x, 'generic')],
    reachable: reachPages(d, x),
  };
}

function traceLines(r: PathRunner, steps: readonly number[]): TraceLine[] {
  return r.model.machine.trace.events.filter((e) => steps.includes(e.step)).map((e) => ({ step: e.step, event: `${e.system}:${e.event}`, text: e.text }));
}

/** The two paths' accounts of each step, aligned line by line (diff's LCS over the page lines). */
function traceDiff(steps: readonly number[], accounts: ReadonlyMap<number, { legacy: string[]; generic: string[] }>): TraceDiffRow[] {
  const rows: TraceDiffRow[] = [];
  for (const step of steps) {
    const a = accounts.get(step);
    if (a === undefined) continue;
    for (const part of diffArrays(a.legacy, a.generic)) {
      const op = part.added ? '+' : part.removed ? '-' : ' ';
      for (const line of part.value) rows.push({ op, step, line });
    }
  }
  return rows;
}

/** The kernel log up to and including the step, each DMAR fault line decoded. */
function logLines(r: PathRunner, upTo: number): LogLine[] {
  return r.model.machine.log.lines
    .filter((l) => l.step <= upTo)
    .map((l) => {
      const fault = decodeFaultLine(l.text);
      return { step: l.step, text: l.text, ...(fault !== undefined ? { fault } : {}) };
    });
}

/** The IOVAs a divergence involves on one path: its mapping's, the device accesses', the fault's. */
function iovasOf(r: PathRunner, x: Divergence, side: 'legacy' | 'generic'): Array<{ dev: Device; iova: bigint; why: string }> {
  const out: Array<{ dev: Device; iova: bigint; why: string }> = [];
  const m: Mapping | undefined = x.map !== undefined ? r.mappings.get(x.map) : undefined;
  if (m !== undefined && m.ok) {
    if (m.kind === 'sg') {
      m.sgt?.sgl.slice(0, m.count).forEach((sg, i) => out.push({ dev: m.dev, iova: sg.dmaAddress, why: `${m.name} segment ${i}` }));
    } else out.push({ dev: m.dev, iova: m.dma, why: `${m.name} +0` });
  }
  const probe = x.probe?.[side];
  if (m !== undefined && probe !== undefined) probe.forEach((p, i) => out.push({ dev: m.dev, iova: p.iova, why: `probe piece ${i} of ${m.name}` }));
  const fault = (side === 'legacy' ? x.legacy : x.generic) as { fault?: { addr?: string } } | undefined;
  const dev = m?.dev ?? (x.device !== undefined ? r.model.devices.find((dv) => dv.name === x.device) : undefined);
  if (dev !== undefined && typeof fault?.fault?.addr === 'string') out.push({ dev, iova: BigInt(fault.fault.addr), why: 'the faulting address' });
  const seen = new Set<string>();
  return out.filter((w) => {
    const key = `${w.dev.name}:${iovaPfn(w.iova)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function walksOf(r: PathRunner, id: PathId, x: Divergence, side: 'legacy' | 'generic'): Walk[] {
  return iovasOf(r, x, side)
    .slice(0, MAX_WALKS)
    .map((w) => {
      const walk = walkIova(r.model, w.dev, w.iova, w.why, id);
      const pfn = r.model.machine.hw.peek(w.dev.sid, iovaPfn(w.iova), false);
      return pfn < 0 ? walk : { ...walk, why: `${w.why}; reaches ${attributePage(r, pfn)}` };
    });
}

/** "0x1000000:rw" (observe.ts showReach) or "3 swiotlb:3 page(s)" (a pool count) */
const REACH_PAGE = /^0x([0-9a-f]+):(\S+)$/;

/** The pages behind a reachable-set difference, each with the mapping it belongs to on the path that reaches it. */
function reachPages(d: Differential, x: Divergence): ReachPage[] {
  if (x.kind !== 'reachable') return [];
  const out: ReachPage[] = [];
  const add = (side: ReachPage['side'], r: PathRunner, xs: readonly string[] | undefined): void => {
    for (const s of xs ?? []) {
      const m = REACH_PAGE.exec(s);
      if (m === null) {
        out.push({ side, phys: '-', perm: '-', mapping: s });
        continue;
      }
      const pfn = Math.floor(parseInt(m[1], 16) / VTD_PAGE_SIZE);
      out.push({ side, phys: `0x${m[1]}`, perm: m[2], mapping: attributePage(r, pfn) });
    }
  };
  add('legacy only', d.legacy, x.onlyLegacy);
  add('generic only', d.generic, x.onlyGeneric);
  return out;
}
