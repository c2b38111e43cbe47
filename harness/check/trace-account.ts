/**
 * Trace accounting (DESIGN.md, equivalence item 7): what each path's map/unmap trace events say
 * it mapped and unmapped, in terms both releases' vocabularies can be translated to, checked two
 * ways after every step:
 *
 * - against the path itself: a shadow of each device's IOVA pages built from the events alone
 *   (trace-events.ts) must equal the present PTEs of that device's domain (the audit, here). A
 *   mapping or unmapping without its event, or an event for a range the path did not map, shows
 *   here, on the path that did it.
 * - against the other path: the targets a step's events mapped and unmapped, per device, must be
 *   the same multiset on both (IOVAs differ legitimately and are not compared; multisetMinus and
 *   sameEntries below).
 *
 * A target is what an IOVA page leads to (trace-targets.ts): a buffer page, a bounce slot page
 * named by the original byte address it stands for, or page k of a coherent buffer. Targets are
 * kept as numbers and spelt out only in a divergence's message: the usual step, where both paths
 * agree, compares sorted number arrays and builds no string.
 */
import type { Device } from '../../kernel/device.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import type { PathRunner } from '../run/path-runner.js';
import { PfnList } from './page-map.js';
import { reachTarget } from './reach-probes.js';
import type { ReachTracker } from './reach-tracker.js';
import { TraceShadow, ascending } from './trace-events.js';
import { hex } from '../workload/scenario.js';
import type { TargetNames } from './trace-targets.js';

export class TraceAccountant extends TraceShadow {
  /**
   * per device index: the pool generation (swiotlb slot owners, coherent buffers) at its last
   * audit; while it stands, what its pool pages stand for has not moved
   */
  private readonly poolSeen: number[];

  /** the pages an audit looks at (kept between audits: no set made per step) */
  private readonly look = new PfnList();

  constructor(
    runner: PathRunner,
    private readonly tracker: ReachTracker,
    names: TargetNames,
  ) {
    super(runner, names);
    this.poolSeen = this.devices.map(() => -1);
  }

  /** A target as text, for messages. */
  targetText(code: number): string {
    return this.names.text(code);
  }

  /** An account entry as text ("DEVICE TARGET"), for messages. */
  entryText(entry: number): string {
    return this.names.entryText(entry, this.devices);
  }

  /**
   * Differences between a device's shadow and its present PTEs, as sentences (empty: none).
   * After each audit the shadow equals the PTEs (a problem is reported once, then resynced), so
   * only the pages that can have moved since are looked at: those whose leaf changed, those the
   * events touched, and, when a slot or coherent buffer changed hands since, those whose leaf
   * maps a pool page (what such a page stands for changes without a PTE write).
   */
  audit(dev: Device): readonly string[] {
    const k = this.byName.get(dev.name)!;
    const changed = this.tracker.leafChanges(dev);
    const look = this.look;
    look.clear();
    look.takeFrom(changed);
    look.takeFrom(this.touched[k]!);
    const pool = this.runner.model.machine.swiotlb.origGeneration + this.runner.coherentGeneration;
    if (pool !== this.poolSeen[k]) {
      this.poolSeen[k] = pool;
      this.tracker.addPooledLeafPages(dev, look);
    }
    const n = look.settle();
    if (n === 0) return NONE;
    const s = this.shadow[k]!;
    const targets = this.targets;
    let noEvent: number[] | undefined;
    let wrong: number[] | undefined;
    let gone: number[] | undefined;
    let truth: Map<number, number> | undefined;
    for (let x = 0; x < n; x++) {
      const pfn = look.at(x);
      const leaf = this.tracker.leafTarget(dev, pfn);
      const u = s.get(pfn);
      if (leaf < 0) {
        if (u !== undefined) (gone ??= []).push(pfn);
        continue;
      }
      const t = targets.physTarget(reachTarget(leaf));
      if (u === undefined) (noEvent ??= []).push(pfn);
      else if (u !== t) (wrong ??= []).push(pfn);
      else continue;
      (truth ??= new Map()).set(pfn, t);
    }
    if (noEvent === undefined && wrong === undefined && gone === undefined) return NONE;
    const list = (xs: number[]): string => `${xs.slice(0, 3).map((p) => hex(p * VTD_PAGE_SIZE)).join(', ')}${xs.length > 3 ? ', ...' : ''}`;
    const out: string[] = [];
    if (noEvent !== undefined) out.push(`${noEvent.length} IOVA page(s) of ${dev.name} mapped with no map event (${list(noEvent.sort(ascending))})`);
    if (wrong !== undefined) out.push(`${wrong.length} IOVA page(s) of ${dev.name} mapped elsewhere than their map event says (${list(wrong.sort(ascending))})`);
    if (gone !== undefined) {
      for (const p of gone) s.delete(p);
      out.push(`${gone.length} IOVA page(s) of ${dev.name} that a map event names are not mapped, and no unmap event said so (${list(gone.sort(ascending))})`);
    }
    // resynchronise, so one problem is reported once
    if (truth !== undefined) for (const [p, t] of truth) s.set(p, t);
    return out;
  }
}

const NONE: readonly string[] = Object.freeze([]);

/** The entries in a but not in b, as multisets of ascending arrays (one merge pass). */
export function multisetMinus(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (const x of a) {
    while (j < b.length && b[j]! < x) j++;
    if (j < b.length && b[j] === x) j++;
    else out.push(x);
  }
  return out;
}

/** Whether two ascending arrays hold the same entries. */
export function sameEntries(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
