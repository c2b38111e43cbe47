/**
 * The CPU and device views (harness/check/views.ts): after sync_for_cpu, unmap and free_coherent the
 * CPU's bytes of a mapping and its neighbourhood are compared, after map and sync_for_device the
 * device's, with no cpu_read or dma_read step needed. Each seeded bounce bug shows as a view
 * divergence of its own kind, at the step that made it, naming the mapping, the byte range and
 * both contents. Expected bytes come from the memory pattern (support/pattern.ts) and fills.
 */
import { describe, expect, it } from 'vitest';
import type { SeededBugs } from '../../harness/run/paths.js';
import { failing, runScenario, type ResultDoc } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { fillHex, patternHex } from '../support/pattern.js';
import { DEV, scenarioJson, type DeviceJson, type StepJson } from './helpers.js';

const UNTRUSTED = { ...DEV, untrusted: true };

function run(steps: StepJson[], faults: SeededBugs = {}, dev: DeviceJson = UNTRUSTED): ResultDoc {
  return runScenario(parseScenario(scenarioJson({ devices: [dev], steps })), { faults });
}

const views = (doc: ResultDoc): ResultDoc['divergences'] => doc.divergences.filter((d) => d.kind === 'cpu-view' || d.kind === 'device-view');

/** a sub-page buffer at 0x3402100 of 0x200 bytes: bounced into a page-aligned slot */
const BUF = { phys: '0x3402100', size: 0x200 };

function lifecycle(dir: string, sg: boolean): StepJson[] {
  const map = sg
    ? { op: 'map_sg', dev: 'dev', dir, as: 'm', sg: [{ phys: BUF.phys, length: BUF.size }, { phys: '0x3412f00', length: 0x300 }] }
    : { op: 'map_page', dev: 'dev', phys: BUF.phys, size: BUF.size, dir, as: 'm' };
  return [
    { op: 'cpu_write', phys: BUF.phys, len: BUF.size, fill: 0x11 },
    map,
    { op: 'dma_write', map: 'm', offset: 0, len: BUF.size, fill: 0x22 },
    { op: 'sync_for_cpu', map: 'm' },
    { op: 'cpu_write', phys: BUF.phys, len: BUF.size, fill: 0x33 },
    { op: 'sync_for_device', map: 'm' },
    { op: 'dma_write', map: 'm', offset: 0, len: 0x10, fill: 0x44 },
    { op: 'unmap', map: 'm' },
  ];
}

describe('the unbroken models show the same CPU and device views through whole lifecycles', () => {
  for (const dir of ['to_device', 'from_device', 'bidirectional']) {
    for (const sg of [false, true]) {
      it(`untrusted ${sg ? 'list' : 'single'} ${dir}`, () => {
        const doc = run(lifecycle(dir, sg));
        expect(views(doc)).toEqual([]);
        expect(failing(doc)).toEqual([]);
      });
    }
  }

  it('a trusted bidirectional buffer: the device writes CPU memory directly on both', () => {
    expect(views(run(lifecycle('bidirectional', false), {}, DEV))).toEqual([]);
  });
});

describe('bounce bugs show as view divergences at the step that made them', () => {
  it('unmapCopyBackAligned: the copy-back at unmap writes the slot padding past the buffer', () => {
    const doc = run(
      [
        { op: 'map_page', dev: 'dev', phys: BUF.phys, size: BUF.size, dir: 'from_device', as: 'm' },
        { op: 'dma_write', map: 'm', offset: 0, len: BUF.size, fill: 0xaa },
        { op: 'unmap', map: 'm' },
      ],
      { unmapCopyBackAligned: true },
    );
    const v = views(doc);
    expect(v.map((d) => [d.step, d.kind, d.map])).toEqual([[2, 'cpu-view', 'm']]);
    // the byte right after the buffer (0x3402300) is the pattern's 0x00 either way: the first
    // changed byte is the next one
    expect(v[0]!.detail).toContain('m +513, 1 byte(s) past its end');
    expect(v[0]!.detail).toContain('phys 0x3402301');
    expect((v[0]!.legacy as { bytes: string }).bytes).toBe(patternHex(0x3402301, 16));
    expect((v[0]!.generic as { bytes: string }).bytes).toBe(fillHex(0, 16));
    expect(v[0]!.allowlisted).toBeUndefined();
  });

  it('unmapCopyBackFromDeviceOnly: a bidirectional bounce loses the device data at unmap', () => {
    const doc = run(
      [
        { op: 'map_page', dev: 'dev', phys: BUF.phys, size: BUF.size, dir: 'bidirectional', as: 'm' },
        { op: 'dma_write', map: 'm', offset: 0x10, len: 0x20, fill: 0xab },
        { op: 'unmap', map: 'm' },
      ],
      { unmapCopyBackFromDeviceOnly: true },
    );
    const v = views(doc);
    expect(v.map((d) => [d.step, d.kind])).toEqual([[2, 'cpu-view']]);
    expect(v[0]!.detail).toContain('[m +16, m +47]');
    expect((v[0]!.legacy as { bytes: string }).bytes).toBe(fillHex(0xab, 16));
    expect((v[0]!.generic as { bytes: string }).bytes).toBe(patternHex(0x3402110, 16));
  });

  it('syncForDeviceWholeSlot: after sync_for_device the device sees the bytes after the buffer in the padding', () => {
    const doc = run(
      [
        { op: 'map_page', dev: 'dev', phys: BUF.phys, size: BUF.size, dir: 'to_device', as: 'm' },
        { op: 'cpu_write', phys: BUF.phys, len: BUF.size, fill: 0x5a },
        { op: 'sync_for_device', map: 'm' },
      ],
      { syncForDeviceWholeSlot: true },
    );
    const v = views(doc);
    expect(v.map((d) => [d.step, d.kind])).toEqual([[2, 'device-view']]);
    // from the first byte after the buffer whose pattern is not 0 (0x3402301) to the page end
    expect(v[0]!.detail).toContain('device page 0, bytes [513, 4096)');
    expect((v[0]!.legacy as { bytes: string }).bytes).toBe(fillHex(0, 16));
    expect((v[0]!.generic as { bytes: string }).bytes).toBe(patternHex(0x3402301, 16));
  });

  it('noBouncePaddingZero: the padding shows at the map itself, with no probe', () => {
    const doc = run([{ op: 'map_page', dev: 'dev', phys: BUF.phys, size: BUF.size, dir: 'from_device', as: 'm' }], { noBouncePaddingZero: true });
    expect(views(doc).map((d) => [d.step, d.kind])).toEqual([[0, 'device-view']]);
  });

  it('legacySyncSgForCpuToDevice: 5.10 sync_for_cpu of a list copies the wrong way; the CPU misses the device data', () => {
    const doc = run(
      [
        { op: 'map_sg', dev: 'dev', dir: 'from_device', as: 'm', sg: [{ phys: BUF.phys, length: BUF.size }] },
        { op: 'dma_write', map: 'm', offset: 0, len: 8, fill: 0xcd },
        { op: 'sync_for_cpu', map: 'm' },
      ],
      { legacySyncSgForCpuToDevice: true },
    );
    const v = views(doc);
    expect(v.map((d) => [d.step, d.kind])).toEqual([[2, 'cpu-view']]);
    expect(v[0]!.detail).toContain('m entry 0 +0');
    // 6.1 copies the whole 0x200-byte slot back: the device's 8 bytes, then the slot's zeros
    expect((v[0]!.legacy as { bytes: string }).bytes).toBe(patternHex(0x3402100, 16));
    expect((v[0]!.generic as { bytes: string }).bytes).toBe(fillHex(0xcd, 8) + fillHex(0, 8));
  });

  it('syncSgWholeList: entry 1 of a list is not synced for the CPU', () => {
    const doc = run(
      [
        {
          op: 'map_sg',
          dev: 'dev',
          dir: 'from_device',
          as: 'm',
          sg: [
            { phys: BUF.phys, length: BUF.size },
            { phys: '0x3412f00', length: 0x300 },
          ],
        },
        { op: 'dma_write', map: 'm', offset: 0, len: 0x500, fill: 0xee },
        { op: 'sync_for_cpu', map: 'm' },
      ],
      { syncSgWholeList: true },
    );
    const v = views(doc);
    expect(v.map((d) => [d.step, d.kind])).toEqual([[2, 'cpu-view']]);
  });
});
