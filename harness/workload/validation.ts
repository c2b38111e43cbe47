/**
 * Parsing and validation of dmadiff-scenario/1. Everything is checked before anything runs;
 * the first problem becomes one line naming where it is (`steps[3].size: ...`).
 */
import { parseBdf } from '../../vtd/entries.js';
import { PHYS_LIMIT, overlappingRegion } from '../../vtd/regions.js';
import { DEFAULT_PLATFORM } from '../../kernel/machine.js';
import { SEEDED_BUGS, type SeededBug } from '../run/paths.js';
import { MAX_DEVICES } from '../check/trace-account.js';
import { CONSUMERS, SCENARIO_FORMAT, hex, type Dir, type MaskWhich, type Platform, type ImportedFrom, type Reserved, type Scenario, type ScenarioDevice, type Step, type TracedResult } from './scenario.js';

export class ScenarioError extends Error {}

type Obj = Record<string, unknown>;

const U64_MAX = (1n << 64n) - 1n;
/** the largest single buffer a scenario may map: 1 GiB */
export const MAX_BUFFER = 1 << 30;
/** the largest device or CPU access: 16 MiB */
export const MAX_ACCESS = 1 << 24;
export const MAX_SG_ENTRIES = 1024;

function fail(where: string, msg: string): never {
  throw new ScenarioError(`${where}: ${msg}`);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(o: Obj, where: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${where}.${k}`, 'unknown field');
}

function bool(o: Obj, k: string, where: string, dflt?: boolean): boolean {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'boolean') fail(`${where}.${k}`, `expected true or false, got ${show(v)}`);
  return v;
}

function int(o: Obj, k: string, where: string, min: number, max: number, dflt?: number): number {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${where}.${k}`, `expected an integer, got ${show(v)}`);
  if (v < min || v > max) fail(`${where}.${k}`, `${v} is outside ${min}..${max}`);
  return v;
}

/** A 64-bit quantity: a "0x..." string (the format's way) or a plain non-negative integer. */
function u64(o: Obj, k: string, where: string, dflt?: bigint): bigint {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  let r: bigint;
  if (typeof v === 'string' && /^0x[0-9a-fA-F]{1,16}$/.test(v)) r = BigInt(v);
  else if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) r = BigInt(v);
  else fail(`${where}.${k}`, `expected a hex string like "0x1000", got ${show(v)}`);
  if (r > U64_MAX) fail(`${where}.${k}`, 'does not fit in 64 bits');
  return r;
}

function str(o: Obj, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length === 0) fail(`${where}.${k}`, `expected a non-empty string, got ${show(v)}`);
  return v;
}

function oneOf<T extends string>(o: Obj, k: string, where: string, values: readonly T[], dflt?: T): T {
  const v = o[k];
  if (v === undefined && dflt !== undefined) return dflt;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) fail(`${where}.${k}`, `expected one of ${values.join(', ')}, got ${show(v)}`);
  return v as T;
}

/** A boundary mask must be 2^n - 1 with n >= 12 (iommu_is_span_boundary wants a power of two). */
function boundaryMask(o: Obj, k: string, where: string, dflt?: bigint): bigint {
  const m = u64(o, k, where, dflt);
  if (m < 0xfffn || ((m + 1n) & m) !== 0n) fail(`${where}.${k}`, `${show(o[k])} is not 2^n-1 with n >= 12`);
  return m;
}

/** A buffer's physical range must lie in the machine and clear of the fixed regions. */
function physRange(o: Obj, k: string, where: string, len: number): number {
  const p = u64(o, k, where);
  if (p + BigInt(len) > BigInt(PHYS_LIMIT)) fail(`${where}.${k}`, `${show(o[k])}+${len} is beyond physical memory (2^39)`);
  const n = Number(p);
  const r = overlappingRegion(n, len);
  if (r !== undefined) fail(`${where}.${k}`, `${show(o[k])}+${len} overlaps the ${r.name} region`);
  return n;
}

function parsePlatform(v: unknown): Platform {
  const w = 'platform';
  if (v === undefined) return { ...DEFAULT_PLATFORM, superpages: [...DEFAULT_PLATFORM.superpages] };
  if (!isObj(v)) fail(w, 'expected an object');
  onlyKeys(v, w, ['agaw', 'cachingMode', 'zlr', 'superpages', 'strict', 'forcedac', 'cpus']);
  const agaw = int(v, 'agaw', w, 39, 57, DEFAULT_PLATFORM.agaw);
  if (agaw !== 39 && agaw !== 48 && agaw !== 57) fail(`${w}.agaw`, `expected 39, 48 or 57, got ${agaw}`);
  let superpages: Platform['superpages'] = [...DEFAULT_PLATFORM.superpages];
  if (v['superpages'] !== undefined) {
    const sp = v['superpages'];
    if (!Array.isArray(sp)) fail(`${w}.superpages`, 'expected an array of "2M" / "1G"');
    superpages = [];
    sp.forEach((s, i) => {
      if (s !== '2M' && s !== '1G') fail(`${w}.superpages[${i}]`, `expected "2M" or "1G", got ${show(s)}`);
      if (superpages.includes(s)) fail(`${w}.superpages[${i}]`, `${s} given twice`);
      superpages.push(s);
    });
  }
  return {
    agaw,
    cachingMode: bool(v, 'cachingMode', w, DEFAULT_PLATFORM.cachingMode),
    zlr: bool(v, 'zlr', w, DEFAULT_PLATFORM.zlr),
    superpages,
    strict: bool(v, 'strict', w, DEFAULT_PLATFORM.strict),
    forcedac: bool(v, 'forcedac', w, DEFAULT_PLATFORM.forcedac),
    cpus: int(v, 'cpus', w, 1, 64, DEFAULT_PLATFORM.cpus),
  };
}

function parseDevices(v: unknown): ScenarioDevice[] {
  if (!Array.isArray(v) || v.length === 0) fail('devices', 'expected a non-empty array');
  if (v.length > MAX_DEVICES) fail('devices', `${v.length} devices, at most ${MAX_DEVICES} are supported`);
  const ids = new Set<string>();
  const bdfs = new Set<number>();
  return v.map((d, i) => {
    const w = `devices[${i}]`;
    if (!isObj(d)) fail(w, 'expected an object');
    onlyKeys(d, w, ['id', 'bdf', 'pci', 'untrusted', 'dmaMask', 'coherentMask', 'maxSegSize', 'segBoundaryMask']);
    const id = str(d, 'id', w);
    if (ids.has(id)) fail(`${w}.id`, `duplicate device id "${id}"`);
    ids.add(id);
    const bdf = str(d, 'bdf', w);
    const sid = parseBdf(bdf);
    if (sid === undefined) fail(`${w}.bdf`, `expected "bb:dd.f" (hex bus, device up to 1f, function 0-7), got ${show(bdf)}`);
    if (bdfs.has(sid)) fail(`${w}.bdf`, `duplicate bdf ${bdf}`);
    bdfs.add(sid);
    const pci = bool(d, 'pci', w, true);
    const untrusted = bool(d, 'untrusted', w, false);
    if (untrusted && !pci) fail(`${w}.untrusted`, 'only a PCI device can be untrusted (pdev->untrusted)');
    const dmaMask = int(d, 'dmaMask', w, 1, 64);
    return {
      id,
      bdf,
      pci,
      untrusted,
      dmaMask,
      coherentMask: int(d, 'coherentMask', w, 1, 64, dmaMask),
      maxSegSize: int(d, 'maxSegSize', w, 1, 0xffff_ffff, 65536),
      // pci_device_add gives PCI devices a 4 GiB boundary; others keep ULONG_MAX
      segBoundaryMask: boundaryMask(d, 'segBoundaryMask', w, pci ? 0xffff_ffffn : U64_MAX),
    };
  });
}

function parseReserved(v: unknown): Reserved[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail('reserved', 'expected an array');
  return v.map((r, i) => {
    const w = `reserved[${i}]`;
    if (!isObj(r)) fail(w, 'expected an object');
    onlyKeys(r, w, ['start', 'end']);
    const start = u64(r, 'start', w);
    const end = u64(r, 'end', w);
    if (end < start) fail(`${w}.end`, 'is below start');
    if (end >= 1n << 57n) fail(`${w}.end`, 'is beyond any IOVA (2^57)');
    return { start, end };
  });
}

type MapKind = 'single' | 'sg' | 'coherent';

/**
 * A device access's offset from its mapping: any integer (a number, or a "0x..."/"-0x..." string
 * as a probe far past a buffer is easier to read in hex). Whether the address it gives fits in 64
 * bits depends on the IOVA each path returned, so that is checked when the step runs
 * (path-runner.ts); here only exactness bounds it: ±(2^53 - 1), more than any IOVA width apart.
 */
function offsetOf(o: Obj, where: string): number {
  const v = o['offset'];
  const k = `${where}.offset`;
  let n: number;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'string' && /^-?0x[0-9a-fA-F]{1,16}$/.test(v)) n = Number(v.startsWith('-') ? -BigInt(v.slice(1)) : BigInt(v));
  else fail(k, `expected an integer or a hex string like "0x7f00000000", got ${show(v)}`);
  if (!Number.isSafeInteger(n)) fail(k, `${show(v)} is beyond ±(2^53 - 1), where offsets are exact`);
  return n;
}

const STEP_FIELDS: Record<Step['op'], readonly string[]> = {
  map_page: ['dev', 'phys', 'size', 'dir', 'cpu', 'as', 'traced'],
  map_sg: ['dev', 'dir', 'sg', 'cpu', 'as', 'traced'],
  unmap: ['map', 'cpu'],
  alloc_coherent: ['dev', 'size', 'cpu', 'as'],
  free_coherent: ['map', 'cpu'],
  sync_for_cpu: ['map'],
  sync_for_device: ['map'],
  dma_read: ['map', 'offset', 'len'],
  dma_write: ['map', 'offset', 'len', 'fill'],
  cpu_read: ['phys', 'len'],
  cpu_write: ['phys', 'len', 'fill'],
  consumer_walk: ['map', 'consumer'],
  flush_queue_timeout: [],
  set_dma_mask: ['dev', 'bits', 'which'],
  set_max_seg_size: ['dev', 'size'],
  set_seg_boundary: ['dev', 'mask'],
};

const DIRS: readonly Dir[] = ['to_device', 'from_device', 'bidirectional'];
const WHICH: readonly MaskWhich[] = ['both', 'streaming', 'coherent'];

function parseSteps(v: unknown, devices: ScenarioDevice[], cpus: number): Step[] {
  if (!Array.isArray(v)) fail('steps', 'expected an array');
  const mappings = new Map<string, MapKind>();
  const devIds = new Set(devices.map((d) => d.id));
  return v.map((s, i): Step => {
    const w = `steps[${i}]`;
    if (!isObj(s)) fail(w, 'expected an object');
    const op = s['op'];
    if (typeof op !== 'string' || !Object.hasOwn(STEP_FIELDS, op)) fail(`${w}.op`, `unknown op ${show(op)}`);
    const o = op as Step['op'];
    onlyKeys(s, w, ['op', ...STEP_FIELDS[o]]);
    const dev = (): string => {
      const d = str(s, 'dev', w);
      if (!devIds.has(d)) fail(`${w}.dev`, `no device "${d}"`);
      return d;
    };
    const cpu = (): number => int(s, 'cpu', w, 0, cpus - 1, 0);
    const as = (kind: MapKind): string => {
      const a = str(s, 'as', w);
      if (mappings.has(a)) fail(`${w}.as`, `"${a}" is already a mapping name`);
      mappings.set(a, kind);
      return a;
    };
    const map = (kinds: readonly MapKind[]): string => {
      const m = str(s, 'map', w);
      const k = mappings.get(m);
      if (k === undefined) fail(`${w}.map`, `no earlier mapping "${m}"`);
      if (!kinds.includes(k)) fail(`${w}.map`, `"${m}" is a ${k} mapping; ${o} needs ${kinds.join(' or ')}`);
      return m;
    };
    switch (o) {
      case 'map_page': {
        const size = int(s, 'size', w, 1, MAX_BUFFER);
        return { op: o, dev: dev(), phys: physRange(s, 'phys', w, size), size, dir: oneOf(s, 'dir', w, DIRS), cpu: cpu(), as: as('single'), ...traced(s, w, false) };
      }
      case 'map_sg': {
        const sg = s['sg'];
        if (!Array.isArray(sg) || sg.length === 0 || sg.length > MAX_SG_ENTRIES) fail(`${w}.sg`, `expected 1..${MAX_SG_ENTRIES} entries`);
        const entries = sg.map((e, j) => {
          const we = `${w}.sg[${j}]`;
          if (!isObj(e)) fail(we, 'expected an object');
          onlyKeys(e, we, ['phys', 'length']);
          const length = int(e, 'length', we, 1, MAX_BUFFER);
          return { phys: physRange(e, 'phys', we, length), length };
        });
        return { op: o, dev: dev(), dir: oneOf(s, 'dir', w, DIRS), sg: entries, cpu: cpu(), as: as('sg'), ...traced(s, w, true) };
      }
      case 'unmap':
        return { op: o, map: map(['single', 'sg']), cpu: cpu() };
      case 'alloc_coherent':
        return { op: o, dev: dev(), size: int(s, 'size', w, 1, MAX_BUFFER), cpu: cpu(), as: as('coherent') };
      case 'free_coherent':
        return { op: o, map: map(['coherent']), cpu: cpu() };
      case 'sync_for_cpu':
      case 'sync_for_device':
        return { op: o, map: map(['single', 'sg']) };
      case 'dma_read':
        return { op: o, map: map(['single', 'sg', 'coherent']), offset: offsetOf(s, w), len: int(s, 'len', w, 1, MAX_ACCESS) };
      case 'dma_write':
        return {
          op: o,
          map: map(['single', 'sg', 'coherent']),
          offset: offsetOf(s, w),
          len: int(s, 'len', w, 1, MAX_ACCESS),
          fill: int(s, 'fill', w, 0, 255),
        };
      case 'cpu_read': {
        const len = int(s, 'len', w, 1, MAX_ACCESS);
        const p = u64(s, 'phys', w);
        if (p + BigInt(len) > BigInt(PHYS_LIMIT)) fail(`${w}.phys`, 'is beyond physical memory (2^39)');
        return { op: o, phys: Number(p), len };
      }
      case 'cpu_write': {
        const len = int(s, 'len', w, 1, MAX_ACCESS);
        return { op: o, phys: physRange(s, 'phys', w, len), len, fill: int(s, 'fill', w, 0, 255) };
      }
      case 'consumer_walk':
        return { op: o, map: map(['sg']), consumer: oneOf(s, 'consumer', w, CONSUMERS) };
      case 'flush_queue_timeout':
        return { op: o };
      case 'set_dma_mask':
        return { op: o, dev: dev(), bits: int(s, 'bits', w, 1, 64), which: oneOf(s, 'which', w, WHICH, 'both') };
      case 'set_max_seg_size':
        return { op: o, dev: dev(), size: int(s, 'size', w, 1, 0xffff_ffff) };
      case 'set_seg_boundary':
        return { op: o, dev: dev(), mask: boundaryMask(s, 'mask', w) };
    }
  });
}

const RELEASES = ['5.10', '6.1'] as const;

/** A hex string field kept as text (normalised to lower case without leading zeros). */
function hexText(o: Obj, k: string, where: string): string {
  return hex(u64(o, k, where));
}

/** A map step's optional `traced` result (dmadiff import-trace). */
function traced(s: Obj, w: string, sg: boolean): { traced?: TracedResult } {
  const t = s['traced'];
  if (t === undefined) return {};
  const wt = `${w}.traced`;
  if (!isObj(t)) fail(wt, 'expected an object');
  onlyKeys(t, wt, sg ? ['release', 'dma', 'segments'] : ['release', 'dma']);
  const out: TracedResult = { release: oneOf(t, 'release', wt, RELEASES), dma: hexText(t, 'dma', wt) };
  if (t['segments'] !== undefined) {
    const segs = t['segments'];
    if (!Array.isArray(segs) || segs.length === 0 || segs.length > MAX_SG_ENTRIES) fail(`${wt}.segments`, `expected 1..${MAX_SG_ENTRIES} segments`);
    out.segments = segs.map((g, j) => {
      const wg = `${wt}.segments[${j}]`;
      if (!isObj(g)) fail(wg, 'expected an object');
      onlyKeys(g, wg, ['dma', 'len']);
      return { dma: hexText(g, 'dma', wg), len: int(g, 'len', wg, 1, MAX_BUFFER) };
    });
  }
  return { traced: out };
}

/** The optional `imported` block (dmadiff import-trace). */
function parseImported(v: unknown): ImportedFrom | undefined {
  if (v === undefined) return undefined;
  const w = 'imported';
  if (!isObj(v)) fail(w, 'expected an object');
  onlyKeys(v, w, ['source', 'release', 'assumptions', 'phys']);
  const phys = v['phys'];
  if (!Array.isArray(phys)) fail(`${w}.phys`, 'expected an array');
  return {
    source: str(v, 'source', w),
    release: oneOf(v, 'release', w, RELEASES),
    assumptions: str(v, 'assumptions', w),
    phys: phys.map((r, k) => {
      const wr = `${w}.phys[${k}]`;
      if (!isObj(r)) fail(wr, 'expected an object');
      onlyKeys(r, wr, ['real', 'model', 'pages']);
      return { real: hexText(r, 'real', wr), model: hexText(r, 'model', wr), pages: int(r, 'pages', wr, 1, 2 ** 40) };
    }),
  };
}

/** Parse a scenario from its JSON value; throws ScenarioError with one line. */
export function parseScenario(v: unknown): Scenario {
  if (!isObj(v)) fail('scenario', 'expected a JSON object');
  onlyKeys(v, 'scenario', ['format', 'platform', 'devices', 'reserved', 'steps', 'seededBugs', 'imported']);
  if (v['format'] !== SCENARIO_FORMAT) fail('format', `expected "${SCENARIO_FORMAT}", got ${show(v['format'])}`);
  const platform = parsePlatform(v['platform']);
  const devices = parseDevices(v['devices']);
  const s: Scenario = { format: SCENARIO_FORMAT, platform, devices, reserved: parseReserved(v['reserved']), steps: parseSteps(v['steps'], devices, platform.cpus) };
  const bugs = parseSeededBugs(v['seededBugs']);
  if (bugs.length > 0) s.seededBugs = bugs;
  const imported = parseImported(v['imported']);
  if (imported !== undefined) s.imported = imported;
  return s;
}

/** The optional list of seeded bugs: known names, each once. */
function parseSeededBugs(v: unknown): SeededBug[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) fail('seededBugs', `expected an array of seeded bug names (${SEEDED_BUGS.join(', ')})`);
  const seen = new Set<string>();
  return v.map((b, i) => {
    if (typeof b !== 'string' || !(SEEDED_BUGS as readonly string[]).includes(b)) fail(`seededBugs[${i}]`, `unknown seeded bug ${show(b)} (${SEEDED_BUGS.join(', ')})`);
    if (seen.has(b)) fail(`seededBugs[${i}]`, `"${b}" is listed twice`);
    seen.add(b);
    return b as SeededBug;
  });
}

/** Parse scenario text (JSON); errors name the place. */
export function parseScenarioText(text: string): Scenario {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail('scenario', `not JSON (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
  }
  return parseScenario(v);
}
