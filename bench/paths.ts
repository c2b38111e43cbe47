/** Each DMA path's figures, and the differential run's. */
import { DmaDirection } from '../kernel/device.js';
import { sgFromBuffers } from '../kernel/scatterlist.js';
import { createPath, type PathName } from '../harness/run/paths.js';
import { PathRunner } from '../harness/run/path-runner.js';
import { runScenario } from '../harness/run/runner.js';
import { parseScenario } from '../harness/workload/validation.js';
import type { Scenario } from '../harness/workload/scenario.js';
import { measure } from './timing.js';

function scenario(strict: boolean, steps: unknown[] = []): Scenario {
  return parseScenario({
    format: 'dmadiff-scenario/1',
    platform: { agaw: 48, strict, cpus: 1 },
    devices: [{ id: 'nic', bdf: '00:03.0', dmaMask: 64 }],
    reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
    steps,
  });
}

function pathFigures(name: PathName): Record<string, number> {
  const out: Record<string, number> = {};
  const tag = name === 'legacy-intel' ? 'legacy' : 'generic';
  for (const strict of [true, false]) {
    const model = createPath(name, scenario(strict));
    const dev = model.devices[0]!;
    const r = measure(() => {
      for (let i = 0; i < 1000; i++) {
        const h = model.mapPage(dev, 0x1000000 + (i & 15) * 4096, 4096, DmaDirection.ToDevice, 0);
        model.unmapPage(dev, h, 4096, DmaDirection.ToDevice, 0);
      }
      if (!strict) model.machine.passFlushQueueTimeout();
      return 1000;
    });
    out[`${tag}_map_unmap_page_pairs_per_sec_${strict ? 'strict' : 'deferred'}`] = r.opsPerSec;
  }
  const model = createPath(name, scenario(true));
  const dev = model.devices[0]!;
  const bufs = Array.from({ length: 16 }, (_, i) => ({ phys: 0x2000000 + i * 0x3000, length: 4096 }));
  const r = measure(() => {
    for (let i = 0; i < 200; i++) {
      const sgt = sgFromBuffers(bufs);
      model.mapSg(dev, sgt, DmaDirection.ToDevice, 0);
      model.unmapSg(dev, sgt, DmaDirection.ToDevice, 0);
    }
    return 200;
  });
  out[`${tag}_map_sg_16_entries_per_sec`] = r.opsPerSec;
  return out;
}

/** A mixed scenario of map, device access, sg and unmap steps. */
function mixedSteps(n: number): unknown[] {
  const steps: unknown[] = [];
  for (let i = 0; steps.length < n; i++) {
    const a = `m${i}`;
    const s = `s${i}`;
    steps.push({ op: 'map_page', dev: 'nic', phys: `0x${(0x1000000 + (i % 64) * 0x1100).toString(16)}`, size: 3000, dir: 'bidirectional', as: a });
    steps.push({ op: 'dma_read', map: a, offset: -16, len: 64 });
    steps.push({ op: 'map_sg', dev: 'nic', dir: 'to_device', as: s, sg: [{ phys: '0x2000000', length: 4096 }, { phys: '0x2003000', length: 2000 }] });
    steps.push({ op: 'dma_write', map: a, offset: 100, len: 32, fill: 7 });
    steps.push({ op: 'unmap', map: s });
    steps.push({ op: 'unmap', map: a });
  }
  return steps.slice(0, n);
}

export function benchPaths(): Record<string, number> {
  const out: Record<string, number> = { ...pathFigures('legacy-intel'), ...pathFigures('dma-iommu') };
  const s = scenario(true, mixedSteps(600));
  const diff = measure(() => {
    runScenario(s);
    return s.steps.length;
  }, 1);
  out['scenario_steps_per_sec_differential_checked'] = diff.opsPerSec;
  for (const name of ['legacy-intel', 'dma-iommu'] as const) {
    const r = measure(() => {
      const runner = new PathRunner(createPath(name, s), s);
      s.steps.forEach((st, i) => runner.run(i, st));
      return s.steps.length;
    }, 1);
    out[`scenario_steps_per_sec_${name === 'legacy-intel' ? 'legacy' : 'generic'}_alone`] = r.opsPerSec;
  }
  return out;
}
