/**
 * One mistake put into a valid scenario (bad-input.test.ts's property): the kinds of mistake, and
 * where each one goes in a given scenario, with the field path its error line must name.
 */
import { REQUIRED, devices, steps, type Json, type Obj } from './bad-input-bases.js';

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

export const MUTATIONS = [
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
export type Mutation = (typeof MUTATIONS)[number];

export interface Mutant {
  /** the file's content: a JSON value, or raw text */
  payload: Json | string;
  /** the field path the one error line must name */
  path: string;
  what: string;
}

function pick<T>(xs: readonly T[], n: number): T | undefined {
  return xs.length === 0 ? undefined : xs[n % xs.length];
}

function stepsWhere(j: Obj, f: (s: Obj, i: number) => boolean): number[] {
  return steps(j)
    .map((s, i) => (f(s, i) ? i : -1))
    .filter((i) => i >= 0);
}

/** Apply one mutation to a copy of base; undefined when base has no place for it. */
export function mutate(base: Obj, m: Mutation, a: number, b: number, c: number): Mutant | undefined {
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
