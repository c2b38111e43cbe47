/**
 * The legacy path's seeded bug legacySyncSgForCpuToDevice: 5.10.262's bounce_sync_sg_for_cpu
 * syncs each bounced entry toward the CPU (kernel-semantics 2.10, 10.10); with the switch on it
 * syncs toward the device instead, in the sg variant only. Expectations written out by hand.
 */
import { describe, expect, it } from 'vitest';
import type { SeededBugs } from '../../harness/run/paths.js';
import { runPath, scenarioJson } from '../support/scenario.js';
import { cpuRead, dmaRead, dmaWrite, fillHex, mapPage, mapSg, patternHex, sync, type DeviceJson, type StepJson } from './helpers.js';

const P = 0x3400000;
const UNTRUSTED: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: true, dmaMask: 64 };

function runU(steps: StepJson[], faults: SeededBugs = {}): ReturnType<typeof runPath> {
  return runPath('legacy-intel', scenarioJson({ devices: [UNTRUSTED], steps }), { faults });
}

describe('legacySyncSgForCpuToDevice (bounce_sync_sg_for_cpu)', () => {
  const sgSteps = [
    mapSg('s', [[P + 0x100, 0x200]], 'bidirectional'),
    dmaWrite('s', 0, 0x200, 0xab),
    sync('s', true),
    cpuRead(P + 0x100, 0x200), // 3
    dmaRead('s', 0, 0x200), // 4
  ];

  it('off: the device\'s bytes reach the CPU buffer', () => {
    const r = runU(sgSteps);
    expect(r.results[3]!.data).toBe(fillHex(0xab, 0x200));
    expect(r.results[4]).toEqual({ ok: true, data: fillHex(0xab, 0x200) });
  });

  it('on: the CPU buffer is copied into the slot instead: the CPU keeps its old bytes and the device write is gone', () => {
    const r = runU(sgSteps, { legacySyncSgForCpuToDevice: true });
    expect(r.results[3]!.data).toBe(patternHex(P + 0x100, 0x200));
    expect(r.results[4]).toEqual({ ok: true, data: patternHex(P + 0x100, 0x200) });
  });

  it('on: the single variant (bounce_sync_single_for_cpu) still copies back', () => {
    const r = runU([mapPage('a', P + 0x100, 0x200, 'bidirectional'), dmaWrite('a', 0, 0x200, 0xab), sync('a', true), cpuRead(P + 0x100, 0x200)], {
      legacySyncSgForCpuToDevice: true,
    });
    expect(r.results[3]!.data).toBe(fillHex(0xab, 0x200));
  });

  it('on: the generic path ignores the switch', () => {
    const r = runPath('dma-iommu', scenarioJson({ devices: [UNTRUSTED], steps: sgSteps }), { faults: { legacySyncSgForCpuToDevice: true } });
    expect(r.results[3]!.data).toBe(fillHex(0xab, 0x200));
  });
});
