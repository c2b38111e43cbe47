/**
 * Determinism (DESIGN.md "Time and CPUs are simulated"): the same scenario gives the same bytes
 * out, every time, in the same process, whatever ran before it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runScenario } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { DEV, TmpFiles, cli, loadFixture, scenarioJson } from './helpers.js';

/** lazy mode, two CPUs, two devices (one untrusted), device faults, sg lists, coherent buffers, timers */
const BUSY = scenarioJson({
  platform: { strict: false, cpus: 2 },
  devices: [
    { ...DEV, maxSegSize: 8192 },
    { id: 'tb', bdf: '00:03.0', untrusted: true, dmaMask: 48, coherentMask: 32 },
  ],
  steps: [
    { op: 'map_page', dev: 'dev', phys: '0x3400000', size: 4096, dir: 'to_device', cpu: 0, as: 'm0' },
    { op: 'map_page', dev: 'tb', phys: '0x3402100', size: 0x200, dir: 'bidirectional', cpu: 1, as: 'm1' },
    {
      op: 'map_sg',
      dev: 'dev',
      dir: 'bidirectional',
      cpu: 1,
      as: 's0',
      sg: [
        { phys: '0x3410000', length: 4096 },
        { phys: '0x3411000', length: 4096 },
        { phys: '0x3420800', length: 2048 },
      ],
    },
    { op: 'map_sg', dev: 'tb', dir: 'from_device', cpu: 0, as: 's1', sg: [{ phys: '0x3430100', length: 300 }, { phys: '0x3431000', length: 4096 }] },
    { op: 'alloc_coherent', dev: 'dev', size: 20480, cpu: 1, as: 'c0' },
    { op: 'alloc_coherent', dev: 'tb', size: 4096, as: 'c1' },
    { op: 'dma_read', map: 'm0', offset: -16, len: 64 },
    { op: 'dma_write', map: 'm0', offset: 0, len: 16, fill: 0x5a },
    { op: 'dma_write', map: 's0', offset: 4000, len: 200, fill: 0xab },
    { op: 'dma_write', map: 's1', offset: 0, len: 400, fill: 0x11 },
    { op: 'sync_for_cpu', map: 's1' },
    { op: 'cpu_read', phys: '0x3430100', len: 300 },
    { op: 'dma_write', map: 'c0', offset: 100, len: 8000, fill: 0x33 },
    { op: 'dma_read', map: 'c0', offset: 0, len: 256 },
    { op: 'consumer_walk', map: 's0', consumer: 'i915' },
    { op: 'consumer_walk', map: 's0', consumer: 'correct' },
    { op: 'unmap', map: 'm0', cpu: 1 },
    { op: 'dma_read', map: 'm0', offset: 0, len: 8 },
    { op: 'unmap', map: 's0' },
    { op: 'flush_queue_timeout' },
    { op: 'dma_read', map: 'm0', offset: 0, len: 8 },
    { op: 'dma_read', map: 's0', offset: 0, len: 8 },
    { op: 'unmap', map: 'm1', cpu: 1 },
    { op: 'unmap', map: 's1' },
    { op: 'free_coherent', map: 'c0', cpu: 1 },
    { op: 'free_coherent', map: 'c1' },
    { op: 'set_dma_mask', dev: 'dev', bits: 32, which: 'both' },
    { op: 'map_page', dev: 'dev', phys: '0x3440000', size: 65536, dir: 'from_device', cpu: 1, as: 'm2' },
    { op: 'dma_write', map: 'm2', offset: 65536, len: 64, fill: 1 },
    { op: 'unmap', map: 'm2', cpu: 1 },
    { op: 'flush_queue_timeout' },
  ],
});

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

describe('the same scenario gives the same output', () => {
  it('exercises what it means to: faults, lazy unmaps, several CPUs', () => {
    const doc = runScenario(parseScenario(BUSY));
    const steps = doc.paths['dma-iommu'].steps;
    expect(steps.some((r) => !r.ok && r.fault !== undefined)).toBe(true);
    expect(doc.paths['legacy-intel'].trace.some((t) => t.cpu === 1)).toBe(true);
    expect(doc.paths['dma-iommu'].trace.some((t) => t.cpu === 1)).toBe(true);
    expect(doc.paths['legacy-intel'].log.length + doc.paths['dma-iommu'].log.length).toBeGreaterThan(0);
  });

  it('`--json` twice in one process: byte-identical', async () => {
    const file = tmp.write(BUSY);
    const a = await cli(['scenario', file, '--json']);
    const b = await cli(['scenario', file, '--json']);
    expect(a.err).toEqual([]);
    expect(a.out.length).toBeGreaterThan(10);
    expect(b.out.join('\n')).toBe(a.out.join('\n'));
    expect(b.code).toBe(a.code);
  });

  it('byte-identical again after other scenarios ran in between (no state carried across runs)', async () => {
    const file = tmp.write(BUSY);
    const first = await cli(['scenario', file, '--json']);
    await cli(['scenario', tmp.write(loadFixture('strict-dmacheck').scenario), '--json']);
    await cli(['scenario', tmp.write(loadFixture('strict-main').scenario)]);
    const again = await cli(['scenario', file, '--json']);
    expect(first.err).toEqual([]);
    expect(first.out.length).toBeGreaterThan(10);
    expect(again.out.join('\n')).toBe(first.out.join('\n'));
  });

  it('the text report is identical too', async () => {
    const file = tmp.write(BUSY);
    const a = await cli(['scenario', file]);
    const b = await cli(['scenario', file]);
    expect(a.err).toEqual([]);
    expect([0, 1]).toContain(a.code);
    expect(a.out.length).toBeGreaterThan(10);
    expect(b.out).toEqual(a.out);
    expect(b.code).toBe(a.code);
  });

  it('runScenario gives deep-equal documents', () => {
    const s = parseScenario(BUSY);
    expect(runScenario(parseScenario(BUSY))).toEqual(runScenario(s));
  });

  it('two main() calls in flight at once each get their own exit code (no state shared between runs)', async () => {
    // the i915 walk over a merged list fails the gate (exit 1); a lone map_page does not (exit 0)
    const failingFile = tmp.write(
      scenarioJson({
        steps: [
          { op: 'map_sg', dev: 'dev', dir: 'bidirectional', as: 's', sg: [{ phys: '0x2000000', length: 4096 }, { phys: '0x3000000', length: 4096 }] },
          { op: 'consumer_walk', map: 's', consumer: 'i915' },
        ],
      }),
    );
    const cleanFile = tmp.write(scenarioJson({ steps: [{ op: 'map_page', dev: 'dev', phys: '0x3400000', size: 4096, dir: 'to_device', as: 'm' }] }));
    const alone = [(await cli(['scenario', failingFile])).code, (await cli(['scenario', cleanFile])).code];
    expect(alone).toEqual([1, 0]);
    const together = await Promise.all([cli(['scenario', failingFile]), cli(['scenario', cleanFile])]);
    expect(together.map((r) => r.code)).toEqual([1, 0]);
  });
});
