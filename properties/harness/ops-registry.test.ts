/**
 * The scenario operations' descriptions (harness/workload/ops/): every op of the format has one;
 * its field table says what the parser really requires; its error lines, its one-line rendering
 * and the generated steps it says emit it are what they were. Expected values are written out
 * here from the format (DESIGN.md's op table), never taken from the code under test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toScenario, workloadArb, type GenKind } from '../../harness/workload/generators.js';
import { OPS } from '../../harness/workload/ops/registry.js';
import { describeStep } from '../../harness/workload/render.js';
import { CONSUMERS, type Op } from '../../harness/workload/scenario.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { ScenarioError } from '../../harness/workload/fields.js';
import { PLATFORM_MATRIX } from '../../harness/search/property.js';
import { HAND, OPS as FORMAT_OPS, REQUIRED, steps, type Obj } from './bad-input-bases.js';

/** the optional fields of each op (a default or nothing stands in) */
const OPTIONAL: Record<string, readonly string[]> = {
  map_page: ['cpu', 'traced'],
  map_sg: ['cpu', 'traced'],
  unmap: ['cpu'],
  alloc_coherent: ['cpu'],
  free_coherent: ['cpu'],
  set_dma_mask: ['which'],
};

/** the kinds of mapping each op that names one may name */
const NAMES: Record<string, readonly string[]> = {
  unmap: ['single', 'sg'],
  free_coherent: ['coherent'],
  sync_for_cpu: ['single', 'sg'],
  sync_for_device: ['single', 'sg'],
  dma_read: ['single', 'sg', 'coherent'],
  dma_write: ['single', 'sg', 'coherent'],
  consumer_walk: ['sg'],
};

const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

function errorOf(json: unknown): string {
  try {
    parseScenario(json);
  } catch (e) {
    if (e instanceof ScenarioError) return e.message;
    throw e;
  }
  return 'valid';
}

/** HAND with step i changed */
function withStep(i: number, patch: (s: Obj) => void): Obj {
  const j = structuredClone(HAND);
  patch(steps(j)[i]!);
  return j;
}

describe('one description per op', () => {
  it('the registry holds exactly the ops of the format, each under its own name', () => {
    expect(sorted(Object.keys(OPS))).toEqual(sorted(FORMAT_OPS));
    for (const [op, d] of Object.entries(OPS)) expect(d.op).toBe(op);
  });

  it("each op's fields are the format's: the required ones, the optional ones, the mapping kinds", () => {
    for (const op of FORMAT_OPS) {
      const fields = Object.entries(OPS[op as Op].fields) as Array<[string, { required: boolean; kinds?: readonly string[] }]>;
      expect(sorted(fields.filter(([, f]) => f.required).map(([k]) => k)), op).toEqual(sorted(REQUIRED[op]!));
      expect(sorted(fields.filter(([, f]) => !f.required).map(([k]) => k)), op).toEqual(sorted(OPTIONAL[op] ?? []));
      const map = fields.find(([k]) => k === 'map');
      expect(map?.[1].kinds, op).toEqual(NAMES[op]);
    }
  });

  it('the field tables tell the parser\'s truth: without a required field a step fails naming it, without an optional one it parses', () => {
    expect(errorOf(HAND)).toBe('valid');
    steps(HAND).forEach((s, i) => {
      for (const [k, f] of Object.entries(OPS[s['op'] as Op].fields) as Array<[string, { required: boolean }]>) {
        if (!(k in s)) continue;
        const e = errorOf(withStep(i, (x) => delete x[k]));
        if (f.required) expect(e.startsWith(`steps[${i}].${k}: `), `${s['op']} without ${k}: ${e}`).toBe(true);
        else expect(e, `${s['op']} without ${k}`).toBe('valid');
      }
    });
  });
});

describe('the error lines are those of the format, word for word', () => {
  const cases: Array<[string, number, (s: Obj) => void, string]> = [
    ['a missing size', 3, (s) => delete s['size'], 'steps[3].size: expected an integer, got undefined'],
    ["another op's field", 10, (s) => (s['size'] = 4096), 'steps[10].size: unknown field'],
    ['an unknown op', 12, (s) => (s['op'] = 'flush'), 'steps[12].op: unknown op "flush"'],
    ['an op named like a prototype member', 12, (s) => (s['op'] = 'toString'), 'steps[12].op: unknown op "toString"'],
    ['a mapping of the wrong kind', 11, (s) => (s['map'] = 's1'), 'steps[11].map: "s1" is a sg mapping; free_coherent needs coherent'],
    ['a mapping never made', 2, (s) => (s['map'] = 'm9'), 'steps[2].map: no earlier mapping "m9"'],
    ['a name given twice', 3, (s) => (s['as'] = 'm1'), 'steps[3].as: "m1" is already a mapping name'],
    ['an unknown device', 13, (s) => (s['dev'] = 'gpu'), 'steps[13].dev: no device "gpu"'],
    ['a CPU the platform lacks', 3, (s) => (s['cpu'] = 2), 'steps[3].cpu: 2 is outside 0..1'],
    ['a bad direction', 0, (s) => (s['dir'] = 'up'), 'steps[0].dir: expected one of to_device, from_device, bidirectional, got "up"'],
    ['a bad offset', 2, (s) => (s['offset'] = '0x'), 'steps[2].offset: expected an integer or a hex string like "0x7f00000000", got "0x"'],
    ['a mask that is no boundary', 15, (s) => (s['mask'] = '0x3ffe'), 'steps[15].mask: "0x3ffe" is not 2^n-1 with n >= 12'],
    ['a CPU read beyond memory', 7, (s) => (s['phys'] = '0xffffffffffffff00'), 'steps[7].phys: is beyond physical memory (2^39)'],
    ['an empty list', 1, (s) => (s['sg'] = []), 'steps[1].sg: expected 1..1024 entries'],
    ['an unknown field of an entry', 1, (s) => ((s['sg'] as Obj[])[1]!['bogus'] = 1), 'steps[1].sg[1].bogus: unknown field'],
    ['an unknown consumer', 9, (s) => (s['consumer'] = 'amdgpu'), `steps[9].consumer: expected one of ${CONSUMERS.join(', ')}, got "amdgpu"`],
    ['a release no trace comes from', 0, (s) => (s['traced'] = { release: '5.9', dma: '0x1' }), 'steps[0].traced.release: expected one of 5.10, 6.1, got "5.9"'],
    ['a fill beyond a byte', 4, (s) => (s['fill'] = 256), 'steps[4].fill: 256 is outside 0..255'],
    ['a width beyond 64 bits', 13, (s) => (s['bits'] = 65), 'steps[13].bits: 65 is outside 1..64'],
    ['an unknown mask half', 13, (s) => (s['which'] = 'all'), 'steps[13].which: expected one of both, streaming, coherent, got "all"'],
  ];
  it.each(cases)('%s: steps[%i]', (_what, i, patch, line) => {
    expect(errorOf(withStep(i, patch))).toBe(line);
  });
});

describe('each op in one line (text reports)', () => {
  it("the hand-written scenario's steps read as the reports have always shown them", () => {
    const s = parseScenario(HAND);
    expect(s.steps.map((st) => describeStep(st))).toEqual([
      'map_page m1 = dev 0x1000100+1500 to_device',
      'map_sg s1 = tb 2 entries from_device',
      'dma_read m1[-64, +128)',
      'alloc_coherent c1 = dev 8192',
      'dma_write s1[4000, +200)',
      'sync_for_cpu s1',
      'sync_for_device s1',
      'cpu_read 0x2000f90+112',
      'cpu_write 0x2000000+16',
      'consumer_walk s1 by i915',
      'unmap m1',
      'free_coherent c1',
      'flush_queue_timeout',
      'set_dma_mask dev 32 bits (both)',
      'set_max_seg_size dev 4096',
      'set_seg_boundary dev 0x3fff',
      'unmap s1',
    ]);
  });

  it("an imported scenario's buffer also by its real address", () => {
    const s = parseScenario(HAND);
    const imported = { source: 't', release: '5.10' as const, assumptions: '', phys: [{ real: '0x7f001000', model: '0x1000000', pages: 1 }] };
    expect(describeStep(s.steps[0]!, imported)).toBe('map_page m1 = dev 0x1000100+1500 (real 0x7f001100) to_device');
  });
});

describe('the generated steps each description names are those that emit it', () => {
  it('over seeded workloads of the mixed and exhaustion kinds, every op comes only from the kinds it lists, and from each of them', () => {
    const seen = new Set<string>();
    for (const mode of ['mixed', 'exhaust'] as const) {
      const o = { consumers: CONSUMERS, maxSteps: 30, maxDevices: 2, mode };
      const platform = PLATFORM_MATRIX[1]!.platform;
      for (const w of fc.sample(workloadArb(o), { seed: 1, numRuns: 200 })) {
        let before = 0;
        for (let k = 0; k < w.steps.length; k++) {
          // normalisation is prefix by prefix: the ops step k adds are those past the prefix before it
          const s = toScenario(platform, { devices: w.devices, steps: w.steps.slice(0, k + 1) }, CONSUMERS);
          const kind: GenKind = w.steps[k]!.k;
          for (const st of s.steps.slice(before)) {
            expect(OPS[st.op].generatedBy as readonly string[], `${st.op} from a generated ${kind}`).toContain(kind);
            seen.add(`${st.op}<-${kind}`);
          }
          before = s.steps.length;
        }
      }
    }
    const listed = Object.values(OPS).flatMap((d) => d.generatedBy.map((k) => `${d.op}<-${k}`));
    expect(sorted(seen)).toEqual(sorted(listed));
  });
});
