/**
 * Bad input never runs and never crashes: `dmadiff scenario FILE` on an invalid scenario exits 2
 * with exactly one line on stderr, "dmadiff: <field path>: <what is wrong>", naming the place of
 * the (only) problem, and prints nothing on stdout. A fast-check property mutates valid
 * scenarios (the two recordings and a hand-written one covering every op) in one place each;
 * unit cases pin the exact path of each kind of mistake; and the CLI's own usage errors.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { DEV, TmpFiles, cli, loadFixture, scenarioJson } from './helpers.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

/** Every op of DESIGN.md's table, two devices, two CPUs, a reserved range. */
const HAND = scenarioJson({
  platform: { agaw: 48, strict: false, cpus: 2, superpages: ['2M'] },
  devices: [
    { ...DEV, coherentMask: 32, maxSegSize: 65536, segBoundaryMask: '0xffffffff' },
    { id: 'tb', bdf: '00:03.0', pci: true, untrusted: true, dmaMask: 39 },
  ],
  steps: [
    { op: 'map_page', dev: 'dev', phys: '0x1000100', size: 1500, dir: 'to_device', cpu: 0, as: 'm1' },
    { op: 'map_sg', dev: 'tb', dir: 'from_device', as: 's1', sg: [{ phys: '0x2000000', length: 4096 }, { phys: '0x3000000', length: 4096 }] },
    { op: 'dma_read', map: 'm1', offset: -64, len: 128 },
    { op: 'alloc_coherent', dev: 'dev', size: 8192, cpu: 1, as: 'c1' },
    { op: 'dma_write', map: 's1', offset: 4000, len: 200, fill: 171 },
    { op: 'sync_for_cpu', map: 's1' },
    { op: 'sync_for_device', map: 's1' },
    { op: 'cpu_read', phys: '0x2000f90', len: 112 },
    { op: 'cpu_write', phys: '0x2000000', len: 16, fill: 7 },
    { op: 'consumer_walk', map: 's1', consumer: 'i915' },
    { op: 'unmap', map: 'm1', cpu: 1 },
    { op: 'free_coherent', map: 'c1' },
    { op: 'flush_queue_timeout' },
    { op: 'set_dma_mask', dev: 'dev', bits: 32, which: 'both' },
    { op: 'set_max_seg_size', dev: 'dev', size: 4096 },
    { op: 'set_seg_boundary', dev: 'dev', mask: '0x3fff' },
    { op: 'unmap', map: 's1' },
  ],
}) as Obj;

const BASES: ReadonlyArray<{ name: string; json: Obj }> = [
  { name: 'hand-written', json: HAND },
  { name: 'strict-main', json: loadFixture('strict-main').scenario as Obj },
  { name: 'strict-dmacheck', json: loadFixture('strict-dmacheck').scenario as Obj },
];

// ---------------------------------------------------------------- the rules of the format

const REQUIRED: Record<string, readonly string[]> = {
  map_page: ['dev', 'phys', 'size', 'dir', 'as'],
  map_sg: ['dev', 'dir', 'sg', 'as'],
  unmap: ['map'],
  alloc_coherent: ['dev', 'size', 'as'],
  free_coherent: ['map'],
  sync_for_cpu: ['map'],
  sync_for_device: ['map'],
  dma_read: ['map', 'offset', 'len'],
  dma_write: ['map', 'offset', 'len', 'fill'],
  cpu_read: ['phys', 'len'],
  cpu_write: ['phys', 'len', 'fill'],
  consumer_walk: ['map', 'consumer'],
  flush_queue_timeout: [],
  set_dma_mask: ['dev', 'bits'],
  set_max_seg_size: ['dev', 'size'],
  set_seg_boundary: ['dev', 'mask'],
};
const OPS = Object.keys(REQUIRED);

/** a value of the wrong type for each field */
function wrongType(field: string): Json {
  if (['dev', 'map', 'as', 'dir', 'consumer', 'which', 'op', 'id', 'bdf', 'format'].includes(field)) return 42;
  if (['size', 'len', 'offset', 'fill', 'bits', 'cpu', 'dmaMask', 'coherentMask', 'maxSegSize', 'agaw', 'cpus', 'length'].includes(field)) return '7';
  if (['phys', 'mask', 'segBoundaryMask', 'start', 'end'].includes(field)) return true;
  if (['pci', 'untrusted', 'cachingMode', 'zlr', 'strict', 'forcedac'].includes(field)) return 'yes';
  if (field === 'sg') return 'sg';
  if (field === 'superpages') return '2M';
  return { nested: true };
}

/** which kinds of mapping each op may name (DESIGN.md's op table) */
const MAP_KINDS: Record<string, readonly string[]> = {
  unmap: ['single', 'sg'],
  free_coherent: ['coherent'],
  sync_for_cpu: ['single', 'sg'],
  sync_for_device: ['single', 'sg'],
  consumer_walk: ['sg'],
};
const KIND_OF: Record<string, string> = { map_page: 'single', map_sg: 'sg', alloc_coherent: 'coherent' };

const BAD_OPS = ['map', 'MAP_PAGE', 'dma-read', 'unmap_sg', 'free', 'nop', ''];
const BAD_BDFS = ['00:20.0', '0:02.0', '00:02.8', 'zz:00.0', '00-02.0', '000:02.0', '00:02', '0000:00:02.0', ''];
const FIXED_REGION_ADDRS = ['0x7f00000000', '0x7f3ffff000', '0x7beb3000', '0x7feb2000', '0x60000000', '0x6ffff000'];
const BEYOND_ADDRS = ['0x8000000000', '0x10000000000', '0xfffffffffffff000'];
const BAD_SIZES = [0, -1, -4096];
const BAD_HEX = ['0x', '0xZZ', '1000', '0x1_000', '0x12345678901234567', ' 0x1000', '-0x1000', '0x-1', 'fff'];
const UNKNOWN_FIELDS = ['bogus', 'Size', 'phys_addr', 'comment', 'dma'];

const MUTATIONS = [
  'drop-required',
  'wrong-type',
  'unknown-field',
  'unknown-op',
  'bad-bdf',
  'duplicate-device',
  'duplicate-as',
  'unknown-mapping',
  'later-mapping',
  'wrong-kind-mapping',
  'unknown-device',
  'fixed-region',
  'beyond-memory',
  'bad-size',
  'bad-hex',
  'bad-cpu',
  'not-json',
] as const;
type Mutation = (typeof MUTATIONS)[number];

interface Mutant {
  /** the file's content: a JSON value, or raw text */
  payload: Json | string;
  /** the field path the one error line must name */
  path: string;
  what: string;
}

function pick<T>(xs: readonly T[], n: number): T | undefined {
  return xs.length === 0 ? undefined : xs[n % xs.length];
}

function steps(j: Obj): Obj[] {
  return j['steps'] as Obj[];
}

function devices(j: Obj): Obj[] {
  return j['devices'] as Obj[];
}

function stepsWhere(j: Obj, f: (s: Obj, i: number) => boolean): number[] {
  return steps(j)
    .map((s, i) => (f(s, i) ? i : -1))
    .filter((i) => i >= 0);
}

/** Apply one mutation to a copy of base; undefined when base has no place for it. */
function mutate(base: Obj, m: Mutation, a: number, b: number, c: number): Mutant | undefined {
  const j = structuredClone(base);
  const st = steps(j);
  const op = (i: number): string => st[i]!['op'] as string;
  switch (m) {
    case 'drop-required': {
      const choices: Array<{ path: string; del: () => void }> = [];
      for (const k of ['format', 'devices', 'steps']) choices.push({ path: k, del: () => delete j[k] });
      devices(j).forEach((d, k) => {
        for (const f of ['id', 'bdf', 'dmaMask']) choices.push({ path: `devices[${k}].${f}`, del: () => delete d[f] });
      });
      st.forEach((s, i) => {
        for (const f of ['op', ...REQUIRED[s['op'] as string]!]) choices.push({ path: `steps[${i}].${f}`, del: () => delete s[f] });
      });
      const ch = pick(choices, a)!;
      ch.del();
      return { payload: j, path: ch.path, what: `without ${ch.path}` };
    }
    case 'wrong-type': {
      const choices: Array<{ path: string; set: () => void }> = [];
      choices.push({ path: 'format', set: () => (j['format'] = wrongType('format')) });
      const plat = j['platform'] as Obj;
      for (const f of ['agaw', 'cachingMode', 'zlr', 'superpages', 'strict', 'forcedac', 'cpus']) choices.push({ path: `platform.${f}`, set: () => (plat[f] = wrongType(f)) });
      devices(j).forEach((d, k) => {
        for (const f of ['id', 'bdf', 'pci', 'untrusted', 'dmaMask', 'coherentMask', 'maxSegSize', 'segBoundaryMask']) choices.push({ path: `devices[${k}].${f}`, set: () => (d[f] = wrongType(f)) });
      });
      ((j['reserved'] as Obj[] | undefined) ?? []).forEach((r, k) => {
        for (const f of ['start', 'end']) choices.push({ path: `reserved[${k}].${f}`, set: () => (r[f] = wrongType(f)) });
      });
      st.forEach((s, i) => {
        for (const f of Object.keys(s)) choices.push({ path: `steps[${i}].${f}`, set: () => (s[f] = wrongType(f)) });
        if (s['op'] === 'map_sg') {
          (s['sg'] as Obj[]).forEach((e, k) => {
            for (const f of ['phys', 'length']) choices.push({ path: `steps[${i}].sg[${k}].${f}`, set: () => (e[f] = wrongType(f)) });
          });
        }
      });
      const ch = pick(choices, a)!;
      ch.set();
      return { payload: j, path: ch.path, what: `${ch.path} of the wrong type` };
    }
    case 'unknown-field': {
      const name = pick(UNKNOWN_FIELDS, b)!;
      const choices: Array<{ path: string; obj: Obj }> = [{ path: `scenario.${name}`, obj: j }, { path: `platform.${name}`, obj: j['platform'] as Obj }];
      devices(j).forEach((d, k) => choices.push({ path: `devices[${k}].${name}`, obj: d }));
      ((j['reserved'] as Obj[] | undefined) ?? []).forEach((r, k) => choices.push({ path: `reserved[${k}].${name}`, obj: r }));
      st.forEach((s, i) => {
        choices.push({ path: `steps[${i}].${name}`, obj: s });
        if (s['op'] === 'map_sg') (s['sg'] as Obj[]).forEach((e, k) => choices.push({ path: `steps[${i}].sg[${k}].${name}`, obj: e }));
      });
      const ch = pick(choices, a)!;
      ch.obj[name] = 1;
      return { payload: j, path: ch.path, what: `an unknown field ${ch.path}` };
    }
    case 'unknown-op': {
      const i = a % st.length;
      st[i]!['op'] = pick(BAD_OPS, b)!;
      return { payload: j, path: `steps[${i}].op`, what: `op ${JSON.stringify(st[i]!['op'])}` };
    }
    case 'bad-bdf': {
      const k = a % devices(j).length;
      devices(j)[k]!['bdf'] = pick(BAD_BDFS, b)!;
      return { payload: j, path: `devices[${k}].bdf`, what: `bdf ${JSON.stringify(devices(j)[k]!['bdf'])}` };
    }
    case 'duplicate-device': {
      // a second device with the first one's id (or bdf)
      const d0 = devices(j)[0]!;
      const k = devices(j).length;
      const byId = b % 2 === 0;
      devices(j).push(byId ? { id: d0['id']!, bdf: '00:1f.7', dmaMask: 64 } : { id: 'another-device', bdf: d0['bdf']!, dmaMask: 64 });
      return { payload: j, path: `devices[${k}].${byId ? 'id' : 'bdf'}`, what: `a duplicate device ${byId ? 'id' : 'bdf'}` };
    }
    case 'duplicate-as': {
      const pairs: Array<[number, number]> = [];
      st.forEach((s, i) => {
        if (!('as' in s)) return;
        for (let e = 0; e < i; e++) if ('as' in st[e]!) pairs.push([e, i]);
      });
      const p = pick(pairs, a);
      if (p === undefined) return undefined;
      st[p[1]]!['as'] = st[p[0]]!['as']!;
      return { payload: j, path: `steps[${p[1]}].as`, what: `"as" of step ${p[1]} reused from step ${p[0]}` };
    }
    case 'unknown-mapping': {
      const i = pick(stepsWhere(j, (s) => 'map' in s), a);
      if (i === undefined) return undefined;
      st[i]!['map'] = 'no-such-mapping';
      return { payload: j, path: `steps[${i}].map`, what: 'a reference to no mapping' };
    }
    case 'later-mapping': {
      // a reference to a mapping that is only made later
      const pairs: Array<[number, number]> = [];
      st.forEach((s, i) => {
        if (!('map' in s)) return;
        const kinds = MAP_KINDS[op(i)] ?? ['single', 'sg', 'coherent'];
        for (let e = i + 1; e < st.length; e++) if ('as' in st[e]! && kinds.includes(KIND_OF[op(e)]!)) pairs.push([i, e]);
      });
      const p = pick(pairs, a);
      if (p === undefined) return undefined;
      st[p[0]]!['map'] = st[p[1]]!['as']!;
      return { payload: j, path: `steps[${p[0]}].map`, what: `step ${p[0]} naming the mapping step ${p[1]} makes` };
    }
    case 'wrong-kind-mapping': {
      const pairs: Array<[number, number]> = [];
      st.forEach((s, i) => {
        const kinds = MAP_KINDS[op(i)];
        if (!('map' in s) || kinds === undefined) return;
        for (let e = 0; e < i; e++) if ('as' in st[e]! && !kinds.includes(KIND_OF[op(e)]!)) pairs.push([i, e]);
      });
      const p = pick(pairs, a);
      if (p === undefined) return undefined;
      st[p[0]]!['map'] = st[p[1]]!['as']!;
      return { payload: j, path: `steps[${p[0]}].map`, what: `${op(p[0])} of a ${KIND_OF[op(p[1])]} mapping` };
    }
    case 'unknown-device': {
      const i = pick(stepsWhere(j, (s) => 'dev' in s), a);
      if (i === undefined) return undefined;
      st[i]!['dev'] = 'no-such-device';
      return { payload: j, path: `steps[${i}].dev`, what: 'a reference to no device' };
    }
    case 'fixed-region':
    case 'beyond-memory': {
      const addrs = m === 'fixed-region' ? FIXED_REGION_ADDRS : BEYOND_ADDRS;
      const choices: Array<{ path: string; obj: Obj }> = [];
      st.forEach((s, i) => {
        if (s['op'] === 'map_page' || s['op'] === 'cpu_write' || (m === 'beyond-memory' && s['op'] === 'cpu_read')) choices.push({ path: `steps[${i}].phys`, obj: s });
        if (s['op'] === 'map_sg') (s['sg'] as Obj[]).forEach((e, k) => choices.push({ path: `steps[${i}].sg[${k}].phys`, obj: e }));
      });
      const ch = pick(choices, a);
      if (ch === undefined) return undefined;
      ch.obj['phys'] = pick(addrs, b)!;
      return { payload: j, path: ch.path, what: `phys ${String(ch.obj['phys'])}` };
    }
    case 'bad-size': {
      const v = pick(BAD_SIZES, b)!;
      const choices: Array<{ path: string; set: () => void }> = [];
      st.forEach((s, i) => {
        if (['map_page', 'alloc_coherent', 'set_max_seg_size'].includes(s['op'] as string)) choices.push({ path: `steps[${i}].size`, set: () => (s['size'] = v) });
        if (['dma_read', 'dma_write', 'cpu_read', 'cpu_write'].includes(s['op'] as string)) choices.push({ path: `steps[${i}].len`, set: () => (s['len'] = v) });
        if (s['op'] === 'map_sg') {
          choices.push({ path: `steps[${i}].sg`, set: () => (s['sg'] = []) });
          (s['sg'] as Obj[]).forEach((e, k) => choices.push({ path: `steps[${i}].sg[${k}].length`, set: () => (e['length'] = v) }));
        }
      });
      const ch = pick(choices, a);
      if (ch === undefined) return undefined;
      ch.set();
      return { payload: j, path: ch.path, what: `${ch.path} = ${v}` };
    }
    case 'bad-hex': {
      const v = pick(BAD_HEX, b)!;
      const choices: Array<{ path: string; obj: Obj; f: string }> = [];
      devices(j).forEach((d, k) => choices.push({ path: `devices[${k}].segBoundaryMask`, obj: d, f: 'segBoundaryMask' }));
      ((j['reserved'] as Obj[] | undefined) ?? []).forEach((r, k) => {
        choices.push({ path: `reserved[${k}].start`, obj: r, f: 'start' });
        choices.push({ path: `reserved[${k}].end`, obj: r, f: 'end' });
      });
      st.forEach((s, i) => {
        if ('phys' in s) choices.push({ path: `steps[${i}].phys`, obj: s, f: 'phys' });
        if ('mask' in s) choices.push({ path: `steps[${i}].mask`, obj: s, f: 'mask' });
        if (s['op'] === 'map_sg') (s['sg'] as Obj[]).forEach((e, k) => choices.push({ path: `steps[${i}].sg[${k}].phys`, obj: e, f: 'phys' }));
      });
      const ch = pick(choices, a)!;
      ch.obj[ch.f] = v;
      return { payload: j, path: ch.path, what: `${ch.path} = ${JSON.stringify(v)}` };
    }
    case 'bad-cpu': {
      const cpus = ((j['platform'] as Obj)['cpus'] as number | undefined) ?? 1;
      const i = pick(stepsWhere(j, (s) => ['map_page', 'map_sg', 'unmap', 'alloc_coherent', 'free_coherent'].includes(s['op'] as string)), a);
      if (i === undefined) return undefined;
      st[i]!['cpu'] = b % 2 === 0 ? cpus : -1;
      return { payload: j, path: `steps[${i}].cpu`, what: `cpu ${String(st[i]!['cpu'])} of ${cpus}` };
    }
    case 'not-json': {
      const text = JSON.stringify(j, null, 2);
      const variants = [text.slice(0, 1 + (a % (text.length - 1))), `${text}x`, text.replace(/"/g, "'"), '', `// comment\n${text}`];
      return { payload: pick(variants, c)!, path: 'scenario', what: 'text that is not JSON' };
    }
  }
}

/** a scenario file: a JSON value is serialised, a string written as is */
function fileFor(p: Json | string): string {
  return tmp.write(p);
}

async function expectOneLine(file: string, path: string): Promise<string> {
  const r = await cli(['scenario', file]);
  expect(r.code).toBe(2);
  expect(r.out.filter((l) => l !== '')).toEqual([]);
  expect(r.err).toHaveLength(1);
  expect(r.err[0]!.startsWith(`dmadiff: ${path}: `), `"${r.err[0]}" should start with "dmadiff: ${path}: "`).toBe(true);
  return r.err[0]!;
}

describe('the bases are valid', () => {
  it.each(BASES.map((b) => [b.name, b.json] as const))('%s runs (exit 0 or 1, nothing on stderr)', async (_name, json) => {
    const r = await cli(['scenario', fileFor(json)]);
    expect([0, 1]).toContain(r.code);
    expect(r.err).toEqual([]);
  });

  it('the hand-written base uses every op', () => {
    expect(new Set(steps(HAND).map((s) => s['op']))).toEqual(new Set(OPS));
  });
});

const PROPERTY_SEED = 20240501;
const PROPERTY_RUNS = 400;
const mutationArb = fc.record({ base: fc.nat(BASES.length - 1), m: fc.constantFrom(...MUTATIONS), a: fc.nat(), b: fc.nat(), c: fc.nat() });

describe('property: one mistake anywhere gives exit 2 and one line naming its place', () => {
  it('holds for every mutation of every base', async () => {
    const arb = mutationArb;
    await fc.assert(
      fc.asyncProperty(arb, async ({ base, m, a, b, c }) => {
        const mu = mutate(BASES[base]!.json, m, a, b, c);
        fc.pre(mu !== undefined);
        const r = await cli(['scenario', fileFor(mu!.payload)]);
        const where = `${BASES[base]!.name}: ${mu!.what}`;
        expect(r.code, where).toBe(2);
        expect(r.out.filter((l) => l !== ''), where).toEqual([]);
        expect(r.err, where).toHaveLength(1);
        expect(r.err[0]!.startsWith(`dmadiff: ${mu!.path}: `), `${where}: "${r.err[0]}" should name ${mu!.path}`).toBe(true);
      }),
      { seed: PROPERTY_SEED, numRuns: PROPERTY_RUNS },
    );
  });

  it("the property's fixed-seed runs try every kind of mistake several times, on every base", () => {
    const samples = fc.sample(mutationArb, { seed: PROPERTY_SEED, numRuns: PROPERTY_RUNS });
    const applied = samples.filter((x) => mutate(BASES[x.base]!.json, x.m, x.a, x.b, x.c) !== undefined);
    for (const m of MUTATIONS) expect(applied.filter((x) => x.m === m).length, m).toBeGreaterThanOrEqual(5);
    for (let b = 0; b < BASES.length; b++) expect(applied.filter((x) => x.base === b).length).toBeGreaterThanOrEqual(50);
  });

  it('every mutation kind applies to at least one base', () => {
    for (const m of MUTATIONS) expect(BASES.some((b) => mutate(b.json, m, 1, 1, 1) !== undefined), m).toBe(true);
  });
});

describe('the exact place of each kind of mistake', () => {
  const withStep = (i: number, patch: Obj | ((s: Obj) => void)): Obj => {
    const j = structuredClone(HAND);
    const s = steps(j)[i]!;
    if (typeof patch === 'function') patch(s);
    else Object.assign(s, patch);
    return j;
  };

  it('a missing required field: steps[3].size', async () => {
    const msg = await expectOneLine(fileFor(withStep(3, (s) => delete s['size'])), 'steps[3].size');
    expect(steps(HAND)[3]!['op']).toBe('alloc_coherent');
    expect(msg).toMatch(/integer/);
  });

  it('a missing device field, a missing top-level member', async () => {
    const j = structuredClone(HAND);
    delete devices(j)[1]!['dmaMask'];
    await expectOneLine(fileFor(j), 'devices[1].dmaMask');
    const k = structuredClone(HAND);
    delete k['steps'];
    await expectOneLine(fileFor(k), 'steps');
    const f = structuredClone(HAND);
    f['format'] = 'dmadiff-scenario/2';
    await expectOneLine(fileFor(f), 'format');
  });

  it('more devices than trace accounting can number (2048): devices, one line', async () => {
    const j = structuredClone(HAND);
    const d0 = devices(j)[0]!;
    // distinct ids and BDFs (bus.dev.fn), so only the count is wrong
    j['devices'] = Array.from({ length: 2049 }, (_, k) => ({ ...d0, id: `d${k}`, bdf: `${(k >> 8).toString(16).padStart(2, '0')}:${((k >> 3) & 31).toString(16).padStart(2, '0')}.${k & 7}` }));
    const msg = await expectOneLine(fileFor(j), 'devices');
    expect(msg).toMatch(/2049 devices, at most 2048/);
  });

  it('a field of the wrong type: steps[0].size as a string, devices[0].pci as a string, platform.cpus as a string', async () => {
    await expectOneLine(fileFor(withStep(0, { size: '1500' })), 'steps[0].size');
    const j = structuredClone(HAND);
    devices(j)[0]!['pci'] = 'true';
    await expectOneLine(fileFor(j), 'devices[0].pci');
    const p = structuredClone(HAND);
    (p['platform'] as Obj)['cpus'] = '2';
    await expectOneLine(fileFor(p), 'platform.cpus');
  });

  it('an unknown field: steps[2].bogus, steps[1].sg[1].bogus, devices[0].bogus, platform.bogus', async () => {
    await expectOneLine(fileFor(withStep(2, { bogus: 1 })), 'steps[2].bogus');
    await expectOneLine(fileFor(withStep(1, (s) => ((s['sg'] as Obj[])[1]!['bogus'] = 1))), 'steps[1].sg[1].bogus');
    const d = structuredClone(HAND);
    devices(d)[0]!['bogus'] = 1;
    await expectOneLine(fileFor(d), 'devices[0].bogus');
    const p = structuredClone(HAND);
    (p['platform'] as Obj)['bogus'] = 1;
    await expectOneLine(fileFor(p), 'platform.bogus');
  });

  it('a field that belongs to another op: steps[10].size on an unmap', async () => {
    await expectOneLine(fileFor(withStep(10, { size: 4096 })), 'steps[10].size');
  });

  it('an unknown op: steps[12].op', async () => {
    await expectOneLine(fileFor(withStep(12, { op: 'flush' })), 'steps[12].op');
  });

  it.each(['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'])(
    'an op named like an Object.prototype member ("%s") is an unknown op, not an internal error',
    async (name) => {
      await expectOneLine(fileFor(withStep(12, { op: name })), 'steps[12].op');
    },
  );

  it('a bad bdf: devices[1].bdf (device number above 1f, function above 7, not hex)', async () => {
    for (const bdf of ['00:20.0', '00:03.8', 'zz:03.0', '0:3.0']) {
      const j = structuredClone(HAND);
      devices(j)[1]!['bdf'] = bdf;
      await expectOneLine(fileFor(j), 'devices[1].bdf');
    }
  });

  it('a duplicate bdf or id: devices[1].bdf, devices[1].id', async () => {
    const b = structuredClone(HAND);
    devices(b)[1]!['bdf'] = '00:02.0';
    await expectOneLine(fileFor(b), 'devices[1].bdf');
    const i = structuredClone(HAND);
    devices(i)[1]!['id'] = 'dev';
    await expectOneLine(fileFor(i), 'devices[1].id');
  });

  it('a duplicate "as": steps[3].as', async () => {
    await expectOneLine(fileFor(withStep(3, { as: 'm1' })), 'steps[3].as');
  });

  it('a reference to an unknown mapping or device: steps[2].map, steps[13].dev', async () => {
    await expectOneLine(fileFor(withStep(2, { map: 'm9' })), 'steps[2].map');
    await expectOneLine(fileFor(withStep(13, { dev: 'gpu' })), 'steps[13].dev');
    await expectOneLine(fileFor(withStep(0, { dev: 'gpu' })), 'steps[0].dev');
  });

  it('a reference to a mapping made only later, or of the wrong kind: steps[2].map, steps[11].map, steps[9].map', async () => {
    await expectOneLine(fileFor(withStep(2, { map: 'c1' })), 'steps[2].map');
    await expectOneLine(fileFor(withStep(11, { map: 's1' })), 'steps[11].map');
    await expectOneLine(fileFor(withStep(9, { map: 'm1' })), 'steps[9].map');
  });

  it('phys in a fixed region: page tables, swiotlb, coherent pool (steps[0].phys, steps[1].sg[1].phys, steps[8].phys)', async () => {
    await expectOneLine(fileFor(withStep(0, { phys: '0x7f00000000' })), 'steps[0].phys');
    await expectOneLine(fileFor(withStep(0, { phys: '0x7beb3000' })), 'steps[0].phys');
    // the last bytes before the pool still overlap it: 0x7beb2f00 + 1500 > 0x7beb3000
    await expectOneLine(fileFor(withStep(0, { phys: '0x7beb2f00' })), 'steps[0].phys');
    await expectOneLine(fileFor(withStep(1, (s) => ((s['sg'] as Obj[])[1]!['phys'] = '0x60000000'))), 'steps[1].sg[1].phys');
    await expectOneLine(fileFor(withStep(8, { phys: '0x7f00001000' })), 'steps[8].phys');
  });

  it('phys beyond 2^39: steps[0].phys, steps[7].phys (cpu_read), steps[1].sg[0].phys', async () => {
    await expectOneLine(fileFor(withStep(0, { phys: '0x8000000000' })), 'steps[0].phys');
    // 2^39 - 1000 + 1500 bytes ends beyond 2^39
    await expectOneLine(fileFor(withStep(0, { phys: `0x${(2 ** 39 - 1000).toString(16)}` })), 'steps[0].phys');
    await expectOneLine(fileFor(withStep(7, { phys: '0xffffffffffffff00' })), 'steps[7].phys');
    await expectOneLine(fileFor(withStep(1, (s) => ((s['sg'] as Obj[])[0]!['phys'] = '0x8000000000'))), 'steps[1].sg[0].phys');
  });

  it('zero and negative sizes: steps[0].size, steps[3].size, steps[2].len, steps[1].sg[0].length, steps[1].sg', async () => {
    await expectOneLine(fileFor(withStep(0, { size: 0 })), 'steps[0].size');
    await expectOneLine(fileFor(withStep(3, { size: -8192 })), 'steps[3].size');
    await expectOneLine(fileFor(withStep(2, { len: 0 })), 'steps[2].len');
    await expectOneLine(fileFor(withStep(8, { len: -16 })), 'steps[8].len');
    await expectOneLine(fileFor(withStep(1, (s) => ((s['sg'] as Obj[])[0]!['length'] = -4096))), 'steps[1].sg[0].length');
    await expectOneLine(fileFor(withStep(1, { sg: [] })), 'steps[1].sg');
  });

  it('bad hex: steps[0].phys, devices[0].segBoundaryMask, steps[15].mask, reserved[0].start', async () => {
    await expectOneLine(fileFor(withStep(0, { phys: '0xZZ' })), 'steps[0].phys');
    await expectOneLine(fileFor(withStep(0, { phys: '1000100' })), 'steps[0].phys');
    const d = structuredClone(HAND);
    devices(d)[0]!['segBoundaryMask'] = '0x3ffg';
    await expectOneLine(fileFor(d), 'devices[0].segBoundaryMask');
    await expectOneLine(fileFor(withStep(15, { mask: '0x' })), 'steps[15].mask');
    // not 2^n - 1: a hex string, but no boundary mask
    await expectOneLine(fileFor(withStep(15, { mask: '0x3ffe' })), 'steps[15].mask');
    const r = structuredClone(HAND);
    ((r['reserved'] as Obj[])[0]!)['start'] = '0x12345678901234567';
    await expectOneLine(fileFor(r), 'reserved[0].start');
  });

  it('a CPU the platform does not have: steps[3].cpu', async () => {
    await expectOneLine(fileFor(withStep(3, { cpu: 2 })), 'steps[3].cpu');
  });

  it('text that is not JSON: "scenario"', async () => {
    const text = JSON.stringify(HAND);
    await expectOneLine(fileFor(text.slice(0, text.length - 1)), 'scenario');
    await expectOneLine(fileFor('not json at all'), 'scenario');
    await expectOneLine(fileFor(''), 'scenario');
  });

  it('JSON that is not an object: "scenario"', async () => {
    await expectOneLine(fileFor('[1, 2]'), 'scenario');
    await expectOneLine(fileFor('null'), 'scenario');
  });
});

describe('usage errors of the command line', () => {
  it('a missing file: exit 2, one line naming the file', async () => {
    const file = tmp.missing();
    const r = await cli(['scenario', file]);
    expect(r.code).toBe(2);
    expect(r.out.filter((l) => l !== '')).toEqual([]);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
    expect(r.err[0]).toContain(file);
  });

  it('an unknown flag: exit 2, one line naming it', async () => {
    const file = fileFor(HAND);
    for (const argv of [['scenario', file, '--bogus'], ['--bogus'], ['scenario', '--frobnicate', file]]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toHaveLength(1);
      expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
      expect(r.err[0]).toMatch(/--bogus|--frobnicate/);
    }
  });

  it('an unknown command, or scenario without its file: exit 2, one line', async () => {
    for (const argv of [['frobnicate'], ['scenario']]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toHaveLength(1);
      expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
    }
  });

  it('no command at all is a usage error too: exit 2 and one line on stderr, not a silent exit 0', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
  });

  it('nothing but the option terminator ("--") is no command either: exit 2 and one line', async () => {
    const r = await cli(['--']);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
  });
});
