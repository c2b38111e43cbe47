/**
 * Parsing and validation of dmadiff-scenario/1. Everything is checked before anything runs;
 * the first problem becomes one line naming where it is (`steps[3].size: ...`).
 */
import { parseBdf } from '../../vtd/entries.js';
import { DEFAULT_PLATFORM } from '../../platform/machine.js';
import { SEEDED_BUGS, type SeededBug } from '../run/paths.js';
import { MAX_DEVICES } from '../check/trace-targets.js';
import { RELEASES, U64_MAX, bool, boundaryMask, fail, hexText, int, isObj, oneOf, onlyKeys, show, str, u64 } from './fields.js';
import { OPS, isOp } from './ops/registry.js';
import { StepReader } from './ops/reader.js';
import { SCENARIO_FORMAT, type Platform, type ImportedFrom, type Reserved, type Scenario, type ScenarioDevice, type Step } from './scenario.js';

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

function parseSteps(v: unknown, devices: ScenarioDevice[], cpus: number): Step[] {
  if (!Array.isArray(v)) fail('steps', 'expected an array');
  const r = new StepReader(new Set(devices.map((d) => d.id)), cpus);
  return v.map((s, i): Step => {
    const w = `steps[${i}]`;
    if (!isObj(s)) fail(w, 'expected an object');
    const op = s['op'];
    if (!isOp(op)) fail(`${w}.op`, `unknown op ${show(op)}`);
    const d = OPS[op];
    onlyKeys(s, w, ['op', ...Object.keys(d.fields)]);
    r.at(s, w, op);
    return d.parse(r);
  });
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
