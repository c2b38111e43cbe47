/**
 * Trace accounting's targets (trace-account.ts): what an IOVA page leads to, as one number both
 * paths' accountants compare, spelt out only in a divergence's message.
 *
 * A target is a buffer page ("p:0x..."), a bounce slot page named by the original byte address
 * it stands for ("b:0x..."), a slot page standing for nothing ("s:0x..."), or page k of a
 * coherent buffer ("c:NAME:k"). Its number is value * KINDS + kind, the value a byte address
 * (< 2^39, PHYS_LIMIT) or a coherent buffer's interned name * 2^16 + its page (the coherent
 * region holds 2^16 pages). An account entry adds the device: index * DEVICE_UNIT + target.
 */
import { must } from '../../kernel/assert.js';
import type { Device } from '../../kernel/device.js';
import { COHERENT_REGION, SWIOTLB_REGION, inRegion } from '../../vtd/regions.js';
import { VTD_PAGE_SIZE } from '../../vtd/regs.js';
import type { PathRunner } from '../run/path-runner.js';
import { hex } from '../workload/scenario.js';

const T_PHYS = 0;
const T_BOUNCE = 1;
const T_SLOT = 2;
const T_COHERENT = 3;
const T_COHERENT_UNKNOWN = 4;
const KINDS = 8;
const COHERENT_PAGES = 2 ** 16;
/** an account entry: device index * DEVICE_UNIT + target (< 2^42); device indexes stay below MAX_DEVICES */
export const DEVICE_UNIT = 2 ** 42;
/** how many devices a scenario may have: account entries stay exact numbers (< 2^53) */
export const MAX_DEVICES = 2 ** 11;

/** The "b:" target of the byte address a bounced page stands for. */
export const bounceTarget = (addr: number): number => addr * KINDS + T_BOUNCE;

/**
 * The names of coherent buffers, as numbers both paths' accountants share: page k of buffer
 * NAME is the same target on both whatever physical pages each path gave it.
 */
export class TargetNames {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];

  id(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.length;
      this.ids.set(name, id);
      this.names.push(name);
    }
    return id;
  }

  /** A target as a maintainer reads it: "p:0x...", "b:0x...", "s:0x...", "c:NAME:k". */
  text(code: number): string {
    const kind = code % KINDS;
    const v = (code - kind) / KINDS;
    switch (kind) {
      case T_PHYS:
        return `p:${hex(v)}`;
      case T_BOUNCE:
        return `b:${hex(v)}`;
      case T_SLOT:
        return `s:${hex(v)}`;
      case T_COHERENT:
        return `c:${must(this.names[Math.floor(v / COHERENT_PAGES)], 'the name of a coherent buffer id')}:${v % COHERENT_PAGES}`;
      default:
        return `c:?:${hex(v)}`;
    }
  }

  /** An account entry (device and target) as "DEVICE TARGET". */
  entryText(entry: number, devices: readonly Device[]): string {
    const k = Math.floor(entry / DEVICE_UNIT);
    return `${must(devices[k], 'the device of an account entry').name} ${this.text(entry - k * DEVICE_UNIT)}`;
  }
}

/** The targets of one path's physical pages: what each stands for on that path now. */
export class PathTargets {
  /** coherent page -> its target, and the runner's coherentGeneration it was built for */
  private coherent = new Map<number, number>();
  private coherentSeen = -1;

  constructor(
    private readonly runner: PathRunner,
    private readonly names: TargetNames,
  ) {}

  /**
   * The target of a physical page as the path maps it (ground truth and 6.1's paddr); a swiotlb
   * page's original address from `slotOrig` when given (what it stood for when an event was emitted).
   */
  physTarget(pfn: number, slotOrig?: Map<number, number>): number {
    const addr = pfn * VTD_PAGE_SIZE;
    if (inRegion(SWIOTLB_REGION, addr)) {
      const orig = slotOrig?.get(pfn) ?? this.runner.model.machine.swiotlb.origOf(addr);
      return orig < 0 ? addr * KINDS + T_SLOT : orig * KINDS + T_BOUNCE;
    }
    if (inRegion(COHERENT_REGION, addr)) return this.coherentTargets().get(pfn) ?? addr * KINDS + T_COHERENT_UNKNOWN;
    return addr * KINDS + T_PHYS;
  }

  /**
   * Each coherent page's target: the buffer holding it and its index there. A freed buffer's
   * pages may back a newer one, so live buffers come first, then in the order they were made.
   * Built again only when a buffer is made or freed, not looked up per page over every mapping.
   */
  private coherentTargets(): Map<number, number> {
    if (this.coherentSeen === this.runner.coherentGeneration) return this.coherent;
    const m = new Map<number, number>();
    for (const live of [true, false]) {
      for (const x of this.runner.mappings.values()) {
        if (x.live !== live || x.coherent === undefined) continue;
        x.coherent.pfns.forEach((pfn, k) => {
          if (!m.has(pfn)) m.set(pfn, (this.names.id(x.name) * COHERENT_PAGES + k) * KINDS + T_COHERENT);
        });
      }
    }
    this.coherent = m;
    this.coherentSeen = this.runner.coherentGeneration;
    return m;
  }
}
