/**
 * fast-check generators of DMA-API workloads. A workload is generated as a list of abstract
 * steps whose references are indices ("the k-th live mapping"), then normalised into a valid
 * dmadiff-scenario/1: a reference to nothing is dropped, names are given in order. Shrinking the
 * abstract list (removing steps, simplifying numbers) therefore always yields a valid scenario,
 * as model-based commands would.
 */
import fc from 'fast-check';
import type { Consumer, Dir, MaskWhich, Platform, Scenario, ScenarioDevice, Step } from './scenario.js';
import { SCENARIO_FORMAT } from './scenario.js';
import { LARGE_BASE, SMALL_BASE, SMALL_SLOT, SMALL_SLOTS, bufArb, bufPhys, dirArb, sgEntriesArb, smallBufArb, wholePages, type Buf } from './gen/buffers.js';
import { exhaustStepArb } from './gen/exhaust.js';
import { lifeArb, type Life } from './gen/life.js';
import { must } from '../../kernel/assert.js';

export type GenStep =
  | { k: 'map_page'; dev: number; buf: Buf; dir: Dir; cpu: number }
  | { k: 'map_sg'; dev: number; entries: Buf[]; dir: Dir; cpu: number }
  | { k: 'unmap'; pick: number; cpu: number }
  | { k: 'alloc'; dev: number; size: number; cpu: number }
  | { k: 'free'; pick: number; cpu: number }
  | { k: 'sync'; pick: number; forCpu: boolean }
  | { k: 'access'; write: boolean; pick: number; where: 'inside' | 'before' | 'after' | 'dead'; at: number; len: number; fill: number }
  | { k: 'cpu'; write: boolean; buf: Buf; fill: number }
  | { k: 'walk'; pick: number; consumer: number }
  | { k: 'fq_timeout' }
  | { k: 'churn'; dev: number; n: number; cpu: number }
  | { k: 'mask'; dev: number; bits: number; which: MaskWhich }
  | { k: 'maxseg'; dev: number; size: number }
  | { k: 'boundary'; dev: number; bits: number }
  | Life
  | { k: 'fill'; dev: number; n: number; cpu: number; reverse: boolean; then: number };

/** The kinds of generated step (each op's description names those that emit it: ops/). */
export type GenKind = GenStep['k'];

export interface GenOptions {
  /** consumers the walk steps may use */
  consumers: readonly Consumer[];
  maxSteps: number;
  maxDevices: number;
  /** 'exhaust': workloads that drive a small IOVA window to exhaustion and back */
  mode?: 'mixed' | 'exhaust';
}

function stepArb(o: GenOptions): fc.Arbitrary<GenStep> {
  if (o.mode === 'exhaust') return exhaustStepArb(o);
  const dev = fc.nat(o.maxDevices - 1);
  const cpu = fc.nat(1);
  const pick = fc.nat(15);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ k: fc.constant('map_page' as const), dev, buf: bufArb, dir: dirArb, cpu }) },
    { weight: 8, arbitrary: fc.record({ k: fc.constant('map_sg' as const), dev, entries: sgEntriesArb, dir: dirArb, cpu }) },
    { weight: 5, arbitrary: fc.record({ k: fc.constant('unmap' as const), pick, cpu }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('alloc' as const), dev, size: fc.constantFrom(4096, 5000, 0x5000, 0x10000), cpu }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('free' as const), pick, cpu }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('sync' as const), pick, forCpu: fc.boolean() }) },
    {
      weight: 7,
      arbitrary: fc.record({
        k: fc.constant('access' as const),
        write: fc.boolean(),
        pick,
        where: fc.constantFrom('inside', 'inside', 'before', 'after', 'dead') as fc.Arbitrary<'inside' | 'before' | 'after' | 'dead'>,
        at: fc.nat(0xffff),
        len: fc.integer({ min: 1, max: 256 }),
        fill: fc.integer({ min: 0, max: 255 }),
      }),
    },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('cpu' as const), write: fc.boolean(), buf: smallBufArb, fill: fc.integer({ min: 0, max: 255 }) }) },
    { weight: 8, arbitrary: fc.record({ k: fc.constant('walk' as const), pick, consumer: fc.nat(o.consumers.length - 1) }) },
    { weight: 2, arbitrary: fc.constant({ k: 'fq_timeout' as const }) },
    // map and unmap one page many times: rcache reuse, and a full flush-queue ring when lazy
    // n shrinks toward 1; the upper half of the range (256 and more) fills a CPU's flush-queue
    // ring (IOVA_FQ_SIZE), which only a trusted device's lazy domain queues: half the devices
    { weight: 4, arbitrary: fc.record({ k: fc.constant('churn' as const), dev, n: fc.integer({ min: 1, max: 12 }).map((k) => (k <= 6 ? k : 256 + (k - 7) * 16)), cpu }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('mask' as const), dev, bits: fc.constantFrom(32, 36, 39, 48, 64), which: fc.constantFrom<MaskWhich>('both', 'streaming', 'coherent') }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('maxseg' as const), dev, size: fc.constantFrom(4096, 0x2000, 0x3000, 0x10000, 0xffff_ffff) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('boundary' as const), dev, bits: fc.constantFrom(13, 14, 16, 32) }) },
    { weight: 25, arbitrary: lifeArb(o) },
  );
}

export function deviceArb(index: number): fc.Arbitrary<ScenarioDevice> {
  return fc
    .record({
      pci: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      untrusted: fc.oneof({ weight: 1, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      dmaMask: fc.constantFrom(32, 36, 39, 48, 64),
      coherentMask: fc.constantFrom(32, 64),
      maxSegSize: fc.constantFrom(65536, 4096, 0x2000, 0xffff_ffff),
      boundary: fc.constantFrom(32, 32, 14, 16),
    })
    .map((d) => ({
      id: `dev${index}`,
      bdf: `00:${(2 + index).toString(16).padStart(2, '0')}.0`,
      pci: d.pci,
      untrusted: d.pci && d.untrusted,
      dmaMask: d.dmaMask,
      coherentMask: d.coherentMask,
      maxSegSize: d.maxSegSize,
      segBoundaryMask: d.pci ? (1n << BigInt(d.boundary)) - 1n : (1n << 64n) - 1n,
    }));
}

export interface Workload {
  devices: ScenarioDevice[];
  steps: GenStep[];
}

export function workloadArb(o: GenOptions): fc.Arbitrary<Workload> {
  return fc.integer({ min: 1, max: o.maxDevices }).chain((n) =>
    fc.record({
      // a second PCI device is of the other kind than the first: workloads of two devices always
      // have a trusted and (if PCI) an untrusted one for the lifecycles to pick from
      devices: fc.tuple(...Array.from({ length: n }, (_, i) => deviceArb(i))).map((ds) => {
        const first = must(ds[0], 'a first device');
        return ds.map((d, i) => (i === 1 && d.pci ? { ...d, untrusted: !(first.pci && first.untrusted) } : d));
      }),
      // minLength 0: fast-check's array shrinker cannot drop the last item while minLength keeps one
      steps: fc.array(stepArb(o), { minLength: 0, maxLength: o.maxSteps }),
    }),
  );
}

/**
 * Turn a generated workload into a valid scenario on `platform`: references pick among the
 * mappings that exist at that point (live or dead as the step needs); a step with nothing to
 * refer to is dropped.
 */
export function toScenario(platform: Platform, w: Workload, consumers: readonly Consumer[]): Scenario {
  const devices = w.devices;
  const live: Array<{ name: string; kind: 'single' | 'sg' | 'coherent'; size: number }> = [];
  const dead: Array<{ name: string; kind: 'single' | 'sg' | 'coherent'; size: number }> = [];
  const steps: Step[] = [];
  const pageAligned = new Set<string>();
  let n = 0;
  const devId = (i: number): string => must(devices[i % devices.length], 'a device').id;
  const cpuOf = (c: number): number => c % platform.cpus;
  const take = (pick: number, kinds: ReadonlyArray<'single' | 'sg' | 'coherent'>, from = live): number => {
    const idx = from.map((m, i) => (kinds.includes(m.kind) ? i : -1)).filter((i) => i >= 0);
    return idx.length === 0 ? -1 : must(idx[pick % idx.length], 'a picked mapping');
  };
  for (const g of w.steps) {
    switch (g.k) {
      case 'map_page': {
        const b = bufPhys(g.buf);
        const as = `m${n++}`;
        steps.push({ op: 'map_page', dev: devId(g.dev), phys: b.phys, size: b.length, dir: g.dir, cpu: cpuOf(g.cpu), as });
        live.push({ name: as, kind: 'single', size: b.length });
        break;
      }
      case 'map_sg': {
        const sg = g.entries.map(bufPhys);
        const as = `s${n++}`;
        if (wholePages(sg)) pageAligned.add(as);
        steps.push({ op: 'map_sg', dev: devId(g.dev), dir: g.dir, sg, cpu: cpuOf(g.cpu), as });
        live.push({ name: as, kind: 'sg', size: sg.reduce((a, e) => a + e.length, 0) });
        break;
      }
      case 'alloc': {
        const as = `c${n++}`;
        steps.push({ op: 'alloc_coherent', dev: devId(g.dev), size: g.size, cpu: cpuOf(g.cpu), as });
        live.push({ name: as, kind: 'coherent', size: g.size });
        break;
      }
      case 'unmap':
      case 'free': {
        const i = take(g.pick, g.k === 'unmap' ? ['single', 'sg'] : ['coherent']);
        if (i < 0) break;
        const m = must(live.splice(i, 1)[0], 'the mapping taken');
        steps.push(g.k === 'unmap' ? { op: 'unmap', map: m.name, cpu: cpuOf(g.cpu) } : { op: 'free_coherent', map: m.name, cpu: cpuOf(g.cpu) });
        dead.push(m);
        break;
      }
      case 'sync': {
        const i = take(g.pick, ['single', 'sg']);
        if (i >= 0) steps.push({ op: g.forCpu ? 'sync_for_cpu' : 'sync_for_device', map: must(live[i], 'a live mapping').name });
        break;
      }
      case 'access': {
        const from = g.where === 'dead' ? dead : live;
        const i = take(g.pick, ['single', 'sg', 'coherent'], from);
        if (i < 0) break;
        const m = must(from[i], 'a picked mapping');
        const offset = g.where === 'before' ? -1 - (g.at % 64) : g.where === 'after' ? m.size + (g.at % 64) : g.at % m.size;
        // a probe write before the buffer stays before it: a device access stops at its first
        // fault, so a write that faults below the buffer on one path only (D5: placement) would
        // leave the buffer's own bytes written on the other path alone, and every later view of
        // them would differ for a reason no check could tell from a lost or misdirected copy
        const len = g.where === 'inside' ? Math.min(g.len, m.size - offset) || 1 : g.where === 'before' && g.write ? Math.min(g.len, -offset) : g.len;
        steps.push(g.write ? { op: 'dma_write', map: m.name, offset, len, fill: g.fill } : { op: 'dma_read', map: m.name, offset, len });
        break;
      }
      case 'cpu': {
        const b = bufPhys(g.buf);
        const len = Math.min(b.length, 256);
        steps.push(g.write ? { op: 'cpu_write', phys: b.phys, len, fill: g.fill } : { op: 'cpu_read', phys: b.phys, len });
        break;
      }
      case 'walk': {
        // i915 builds its lists from whole pages: its iterators are only meaningful on such lists,
        // so an i915-style consumer walks one of those when there is one
        const c = must(consumers[g.consumer % consumers.length], 'a consumer');
        const wholeLists = live.map((m, k) => (m.kind === 'sg' && pageAligned.has(m.name) ? k : -1)).filter((k) => k >= 0);
        const i = c !== 'correct' && wholeLists.length > 0 ? must(wholeLists[g.pick % wholeLists.length], 'a whole-page list') : take(g.pick, ['sg']);
        if (i < 0) break;
        const walked = must(live[i], 'a live list');
        const whole = pageAligned.has(walked.name);
        steps.push({ op: 'consumer_walk', map: walked.name, consumer: c === 'correct' || whole ? c : 'correct' });
        break;
      }
      case 'fq_timeout':
        steps.push({ op: 'flush_queue_timeout' });
        break;
      case 'churn': {
        // a ring-filling churn goes to a trusted device when there is one: an untrusted device's
        // unmaps are flushed at once on both releases and never queue
        const trusted = devices.findIndex((d) => !(d.pci && d.untrusted));
        const dev = g.n >= 256 && trusted >= 0 ? must(devices[trusted], 'the trusted device').id : devId(g.dev);
        for (let j = 0; j < g.n; j++) {
          const as = `m${n++}`;
          steps.push({ op: 'map_page', dev, phys: SMALL_BASE + (j % SMALL_SLOTS) * SMALL_SLOT, size: 4096, dir: 'to_device', cpu: cpuOf(g.cpu), as });
          steps.push({ op: 'unmap', map: as, cpu: cpuOf(g.cpu) });
          dead.push({ name: as, kind: 'single', size: 4096 });
        }
        break;
      }
      case 'mask':
        steps.push({ op: 'set_dma_mask', dev: devId(g.dev), bits: g.bits, which: g.which });
        break;
      case 'maxseg':
        steps.push({ op: 'set_max_seg_size', dev: devId(g.dev), size: g.size });
        break;
      case 'boundary':
        steps.push({ op: 'set_seg_boundary', dev: devId(g.dev), mask: (1n << BigInt(g.bits)) - 1n });
        break;
      case 'fill': {
        // many one-page mappings live at once, then all unmapped: the magazines fill and spill
        const made: string[] = [];
        for (let j = 0; j < g.n; j++) {
          const as = `m${n++}`;
          steps.push({ op: 'map_page', dev: devId(g.dev), phys: SMALL_BASE + (j % SMALL_SLOTS) * SMALL_SLOT + Math.floor(j / SMALL_SLOTS) * 4096, size: 4096, dir: 'to_device', cpu: cpuOf(g.cpu), as });
          made.push(as);
        }
        if (g.reverse) made.reverse();
        for (const as of made) {
          steps.push({ op: 'unmap', map: as, cpu: cpuOf(g.cpu) });
          dead.push({ name: as, kind: 'single', size: 4096 });
        }
        // then a request that may need the cached space back: the failure path, flushes, retries
        const as = `m${n++}`;
        steps.push({ op: 'map_page', dev: devId(g.dev), phys: LARGE_BASE, size: g.then * 4096, dir: 'to_device', cpu: cpuOf(g.cpu), as });
        live.push({ name: as, kind: 'single', size: g.then * 4096 });
        break;
      }
      case 'life': {
        const want = devices.findIndex((d) => d.pci && d.untrusted === g.untrusted);
        const dev = must(devices[want >= 0 ? want : g.dev % devices.length], 'a device').id;
        const sg = g.entries.map(bufPhys);
        const one = must(sg[0], 'a first buffer');
        const bufs = g.sg ? sg : [one];
        const size = bufs.reduce((a, e) => a + e.length, 0);
        const cpuWrite = (fill: number): void => {
          for (const e of bufs) steps.push({ op: 'cpu_write', phys: e.phys, len: e.length, fill });
        };
        const cpuRead = (): void => {
          for (const e of bufs) steps.push({ op: 'cpu_read', phys: e.phys, len: Math.min(e.length, 256) });
        };
        const keep = (j: number): boolean => g.keep[j] !== false;
        if (keep(0)) cpuWrite(g.fills[0]);
        if (!keep(1)) break;
        const as = g.sg ? `s${n++}` : `m${n++}`;
        if (g.sg && wholePages(bufs)) pageAligned.add(as);
        if (g.sg) steps.push({ op: 'map_sg', dev, dir: g.dir, sg: bufs, cpu: cpuOf(g.cpu), as });
        else steps.push({ op: 'map_page', dev, phys: one.phys, size: one.length, dir: g.dir, cpu: cpuOf(g.cpu), as });
        const at = g.whole ? 0 : g.at % size;
        const len = g.whole ? size : Math.min(g.len, size - at);
        if (keep(2)) steps.push({ op: 'dma_read', map: as, offset: 0, len: Math.min(size, 1 << 24) });
        if (keep(3)) steps.push({ op: 'dma_write', map: as, offset: at, len, fill: g.fills[1] });
        if (keep(4)) steps.push({ op: 'sync_for_cpu', map: as });
        if (keep(5)) cpuRead();
        if (keep(6)) cpuWrite(g.fills[2]);
        if (keep(7)) steps.push({ op: 'sync_for_device', map: as });
        if (keep(8)) steps.push({ op: 'dma_read', map: as, offset: 0, len: Math.min(size, 1 << 24) });
        if (keep(9)) steps.push({ op: 'dma_write', map: as, offset: at, len, fill: g.fills[1] ^ 0xff });
        const kind = g.sg ? ('sg' as const) : ('single' as const);
        if (keep(10)) {
          steps.push({ op: 'unmap', map: as, cpu: cpuOf(g.cpu) });
          dead.push({ name: as, kind, size });
          if (keep(11)) cpuRead();
        } else {
          live.push({ name: as, kind, size });
        }
        break;
      }
    }
  }
  return { format: SCENARIO_FORMAT, platform: { ...platform, superpages: [...platform.superpages] }, devices, reserved: [{ start: 0xfee0_0000n, end: 0xfeef_ffffn }], steps };
}
