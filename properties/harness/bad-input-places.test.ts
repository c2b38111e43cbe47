/**
 * Bad input, unit cases: each kind of mistake in the hand-written scenario gives exit 2 and one
 * line naming its exact place (bad-input.test.ts has the property over every place).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HAND, devices, expectOneLine, steps, type Json, type Obj } from './bad-input-bases.js';
import { TmpFiles } from './helpers.js';

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

/** a scenario file: a JSON value is serialised, a string written as is */
function fileFor(p: Json | string): string {
  return tmp.write(p);
}

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
