import { createPath } from '/work/main/dist/harness/paths.js';
import { PathRunner } from '/work/main/dist/harness/path-runner.js';
import { runScenario } from '/work/main/dist/harness/runner.js';
import { parseScenario } from '/work/main/dist/harness/validation.js';
const hex = (n) => `0x${n.toString(16)}`;
const steps = [];
const live = 200, tail = 5000;
for (let i = 0; i < live; i++) steps.push({ op: 'map_page', dev: 'nvme', phys: hex(0x1_0000_0000 + i * 4096), size: 4096, dir: 'bidirectional', as: `q${i}` });
for (let i = 0; steps.length < live + tail; i++) {
  const a = `t${i}`;
  steps.push({ op: 'map_page', dev: 'nvme', phys: hex(0x8000_0000 + (i % 256) * 0x1200), size: 2048, dir: i % 2 === 0 ? 'to_device' : 'from_device', as: a });
  steps.push({ op: 'dma_read', map: a, offset: 0, len: 512 });
  steps.push({ op: 'dma_write', map: `q${i % live}`, offset: 64, len: 64, fill: i & 0xff });
  steps.push({ op: 'sync_for_cpu', map: a });
  steps.push({ op: 'unmap', map: a });
}
const s = parseScenario({ format: 'dmadiff-scenario/1', platform: { agaw: 48, strict: true, cpus: 1 }, devices: [{ id: 'nvme', bdf: '00:04.0', dmaMask: 64 }], reserved: [{ start: '0xfee00000', end: '0xfeefffff' }], steps });
const alone = (n) => { const t = process.hrtime.bigint(); const r = new PathRunner(createPath(n, s), s); s.steps.forEach((st, i) => r.run(i, st)); return Number(process.hrtime.bigint() - t) / 1e6; };
const chk = () => { const t = process.hrtime.bigint(); runScenario(s); return Number(process.hrtime.bigint() - t) / 1e6; };
for (let k = 0; k < 4; k++) console.log('checked', chk().toFixed(0), 'legacy', alone('legacy-intel').toFixed(0), 'generic', alone('dma-iommu').toFixed(0));
