/**
 * dmadiff import-trace: a real driver's trace (the nvme recording from 5.10, fixture copy of
 * ../shared/traces) replayed with every IOVA the real kernel handed out; hand-written 6.1 traces
 * (runs grouped into calls, unmaps by first IOVA); traces the models wrote themselves, read back
 * (bounce events of an untrusted device included); and bad input, one line with its line number.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importTrace, type ImportOptions } from '../../harness/workload/import/import-trace.js';
import { PLATFORM_MATRIX } from '../../harness/search/property.js';
import { Differential, failing, runScenario } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { scenarioToJson } from '../../harness/workload/scenario.js';
import { renderTraceLine, type TraceEvent } from '../../kernel/trace.js';
import { TmpFiles, cli } from './helpers.js';

const NVME = fileURLToPath(new URL('../fixtures/traces/nvme-5.10-strict.trace.txt', import.meta.url));
const nvmeText = readFileSync(NVME, 'utf8');
const QEMU_STRICT = PLATFORM_MATRIX.find((p) => p.name === 'qemu-strict')!;
const opts = (o: Partial<ImportOptions> = {}): ImportOptions => ({ source: 'test.trace', platform: QEMU_STRICT, dir: 'bidirectional', mask: 64, touch: false, ...o });

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

/** The DMA addresses the trace's map events print, read straight from the text (not by the importer). */
function tracedAddresses(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => / (map_single|map_sg): /.test(l))
    .map((l) => /dev_addr=(0x[0-9a-f]+)/.exec(l)![1]!);
}

describe('the nvme driver recorded on Linux 5.10, imported and replayed', () => {
  const { scenario, summary } = importTrace(nvmeText, opts({ source: 'nvme-5.10-strict.trace.txt' }));
  const doc = runScenario(scenario);

  it('hands out, on the legacy path, every IOVA the real 5.10 kernel did, in order', () => {
    const got: string[] = [];
    scenario.steps.forEach((st, i) => {
      const r = doc.paths['legacy-intel'].steps[i]!;
      if (st.op === 'map_page') got.push(r.dma!);
      if (st.op === 'map_sg') got.push(...r.segments!.map((g) => g.dma));
    });
    const want = tracedAddresses(nvmeText);
    expect(want.length).toBe(161);
    expect(got).toEqual(want);
    expect(doc.divergences.filter((d) => d.kind === 'fidelity')).toEqual([]);
  });

  it('runs the same calls on the generic path with no divergence outside the allowlist', () => {
    expect(failing(doc)).toEqual([]);
    expect(doc.paths['dma-iommu'].steps.every((r) => r.ok)).toBe(true);
  });

  it('keeps the trace’s calls: 12 sg lists, the exact lengths the unmaps print, the real addresses recorded', () => {
    const sg = scenario.steps.filter((s) => s.op === 'map_sg');
    expect(sg).toHaveLength(12);
    expect(sg[0]).toMatchObject({ op: 'map_sg', cpu: 0, sg: [{ length: 4096 }, { length: 4096 }, { length: 4096 }, { length: 4096 }] });
    // map_single phys_addr=0x29be6000 size=4096 is unmapped with size=8: the call mapped 8 bytes
    expect(scenario.steps.filter((s) => s.op === 'map_page' && s.traced?.dma === '0xffffd000').map((s) => (s.op === 'map_page' ? s.size : 0))).toContain(8);
    // map_single dev_addr=0xffffdc00 phys_addr=0x29be8c00 is unmapped with size=512: 512 bytes at offset 0xc00
    const m = scenario.steps.find((s) => s.op === 'map_page' && s.traced?.dma === '0xffffdc00');
    expect(m).toMatchObject({ size: 512 });
    const r = scenario.imported!.phys.find((x) => x.real === '0x29be8000')!;
    expect(m?.op === 'map_page' && (m.phys & 0xfff) === 0xc00 && Number(r.model) === m.phys - 0xc00).toBe(true);
    expect(summary).toMatch(/^imported 34 call\(s\) \(22 map_page, 12 map_sg; 26 unmapped\) of 1 device\(s\) from 5\.10 intel_iommu events; skipped 9 tracing_mark_write; assumed: direction bidirectional/);
    expect(summary.split('\n')).toHaveLength(1);
  });

  it('relocates consistently: a page shared by two calls stays shared, offsets within 2 MiB are kept, runs stay apart', () => {
    const runs = scenario.imported!.phys.map((r) => ({ real: Number(r.real), model: Number(r.model), pages: r.pages }));
    for (const r of runs) expect(r.model % (2 << 20)).toBe(r.real % (2 << 20));
    for (let k = 1; k < runs.length; k++) expect(runs[k]!.model).toBeGreaterThan(runs[k - 1]!.model + runs[k - 1]!.pages * 4096);
    // 0x2c6c000 is mapped by three sg lists in the trace
    const at = (s: (typeof scenario.steps)[number]): number[] => (s.op === 'map_sg' ? s.sg.map((e) => e.phys) : []);
    const r = runs.find((x) => x.real <= 0x2c6c000 && 0x2c6c000 < x.real + x.pages * 4096)!;
    const uses = scenario.steps.flatMap(at).filter((p) => p === r.model + (0x2c6c000 - r.real));
    expect(uses.length).toBeGreaterThanOrEqual(3);
  });

  it('--touch adds a device read after each map and before each unmap, and still diverges only where allowed', () => {
    const t = importTrace(nvmeText, opts({ touch: true })).scenario;
    const reads = t.steps.filter((s) => s.op === 'dma_read').length;
    expect(reads).toBe(34 + 26);
    expect(failing(runScenario(t))).toEqual([]);
  });

  it('reports a model that returns other than the kernel did as a fidelity divergence of that path', () => {
    const json = JSON.parse(JSON.stringify(scenarioToJson(scenario))) as { steps: Array<Record<string, unknown>> };
    (json.steps[1]!['traced'] as { dma: string }).dma = '0xffffd000';
    const bad = runScenario(parseScenario(json));
    const f = failing(bad);
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ step: 1, kind: 'fidelity', path: 'legacy-intel' });
    expect(f[0]!.detail).toContain('returned 0xffffe000 where the traced 5.10 kernel returned 0xffffd000');
  });

  it('through the CLI: import-trace --out writes the scenario and prints the summary; scenario on it exits 0', async () => {
    const out = join(tmp.dir, 'nvme.scenario.json');
    const r = await cli(['import-trace', NVME, '--out', out]);
    expect(r.code).toBe(0);
    expect(r.out.filter((l) => l !== '')).toHaveLength(1);
    expect(r.out[0]).toMatch(/^imported 34 call/);
    const s = await cli(['scenario', out]);
    expect(s.code).toBe(0);
    expect(s.out.join('\n')).toContain('(real 0x2a396000)');
  });
});

/** ftrace lines as /sys/kernel/tracing/trace prints them, CPU and time made up. */
function lines6(...events: Array<[number, string, string]>): string {
  const head = '# tracer: nop\n#\n#           TASK-PID     CPU#  ||||   TIMESTAMP  FUNCTION\n';
  return head + events.map(([cpu, ev, text], k) => `           fio-301     [${String(cpu).padStart(3, '0')}] .....    10.${String(100000 + k).slice(1)}0: ${ev}: ${text}`).join('\n') + '\n';
}
const map6 = (iova: number, paddr: number, size: number): string => `IOMMU: iova=0x${iova.toString(16).padStart(16, '0')} - 0x${(iova + size).toString(16).padStart(16, '0')} paddr=0x${paddr.toString(16).padStart(16, '0')} size=${size}`;
const unmap6 = (iova: number, size: number): string => `IOMMU: iova=0x${iova.toString(16).padStart(16, '0')} - 0x${(iova + size).toString(16).padStart(16, '0')} size=${size} unmapped_size=${size}`;

describe('hand-written 6.1 traces', () => {
  it('groups runs mapped at consecutive IOVAs on one CPU into one map_sg, a lone run into a map_page, and unmaps by first IOVA', () => {
    const text = lines6(
      [0, 'map', map6(0xfffff000, 0x12345000, 0x1000)],
      [0, 'map', map6(0xffff8000, 0x20000000, 0x2000)],
      [0, 'map', map6(0xffffa000, 0x30000000, 0x1000)],
      [0, 'qi_submit', 'IOTLB flush 0x1 0x2 0x3 0x4'],
      [0, 'unmap', unmap6(0xffff8000, 0x3000)],
      [0, 'unmap', unmap6(0xfffff000, 0x1000)],
    );
    const { scenario, summary } = importTrace(text, opts());
    expect(scenario.steps.map((s) => s.op)).toEqual(['map_page', 'map_sg', 'unmap', 'unmap']);
    const [a, b, c, d] = scenario.steps;
    expect(a).toMatchObject({ op: 'map_page', size: 0x1000, traced: { release: '6.1', dma: '0xfffff000' } });
    expect(b).toMatchObject({ op: 'map_sg', sg: [{ length: 0x2000 }, { length: 0x1000 }], traced: { release: '6.1', dma: '0xffff8000' } });
    expect(b!.op === 'map_sg' && b.traced?.segments).toBeUndefined();
    expect(c).toMatchObject({ op: 'unmap', map: (b as { as: string }).as });
    expect(d).toMatchObject({ op: 'unmap', map: (a as { as: string }).as });
    expect(scenario.devices).toMatchObject([{ bdf: '00:02.0' }]);
    expect(summary).toContain('skipped 1 qi_submit');
    expect(summary).toContain('device 00:02.0 (--device)');
    expect(summary).toContain('offsets 0 and lengths whole pages');
    expect(summary.split('\n')).toHaveLength(1);
  });

  it('splits a group its unmap shows was two calls: two 4 KiB maps at consecutive IOVAs, each unmapped with size=4096', () => {
    const text = lines6(
      [0, 'map', map6(0xffffe000, 0x50000000, 0x1000)],
      [0, 'map', map6(0xfffff000, 0x60000000, 0x1000)],
      [0, 'unmap', unmap6(0xffffe000, 0x1000)],
      [0, 'unmap', unmap6(0xfffff000, 0x1000)],
    );
    const { scenario, summary } = importTrace(text, opts());
    expect(scenario.steps.map((s) => s.op)).toEqual(['map_page', 'map_page', 'unmap', 'unmap']);
    const [a, b, c, d] = scenario.steps;
    expect(a).toMatchObject({ op: 'map_page', size: 0x1000, traced: { release: '6.1', dma: '0xffffe000' } });
    expect(b).toMatchObject({ op: 'map_page', size: 0x1000, traced: { release: '6.1', dma: '0xfffff000' } });
    expect(c).toMatchObject({ op: 'unmap', map: (a as { as: string }).as });
    expect(d).toMatchObject({ op: 'unmap', map: (b as { as: string }).as });
    expect(summary).toMatch(/^imported 2 call\(s\) \(2 map_page, 0 map_sg; 2 unmapped\)/);
    expect(summary).not.toContain('made before the trace began');
  });

  it('puts a call split off a group where its first run was mapped, after another CPU’s map in between', () => {
    const text = lines6(
      [0, 'map', map6(0xffff0000, 0x50000000, 0x1000)],
      [1, 'map', map6(0xfff00000, 0x70000000, 0x1000)],
      [0, 'map', map6(0xffff1000, 0x60000000, 0x2000)],
      [0, 'map', map6(0xffff3000, 0x68000000, 0x1000)],
      [0, 'unmap', unmap6(0xffff0000, 0x1000)],
      [1, 'unmap', unmap6(0xffff1000, 0x3000)],
    );
    const { scenario, summary } = importTrace(text, opts());
    expect(scenario.steps.map((s) => s.op)).toEqual(['map_page', 'map_page', 'map_sg', 'unmap', 'unmap']);
    expect(scenario.steps.map((s) => (s.op === 'map_page' || s.op === 'map_sg' ? s.traced?.dma : s.op === 'unmap' ? s.map : ''))).toEqual(['0xffff0000', '0xfff00000', '0xffff1000', 'L4', 'L6']);
    expect(scenario.steps[2]).toMatchObject({ op: 'map_sg', cpu: 0, sg: [{ length: 0x2000 }, { length: 0x1000 }] });
    expect(scenario.steps[4]).toMatchObject({ op: 'unmap', cpu: 1 });
    expect(summary).not.toContain('made before the trace began');
  });

  it('imports a long trace: 300 000 map and unmap pairs (one Math.max argument an action would overflow the stack)', () => {
    // vitest's worker threads have a 4 MiB stack where the CLI's main thread has about 1 MiB:
    // 600 000 actions is past what either would take as spread arguments
    const n = 300_000;
    const out = ['# tracer: nop'];
    for (let k = 0; k < n; k++) {
      const iova = 0xfffff000 - (k % 64) * 0x1000;
      const cpu = String(k % 4).padStart(3, '0');
      out.push(`  fio-301 [${cpu}] ..... 10.000000: map: ${map6(iova, 0x40000000 + (k % 4096) * 0x1000, 0x1000)}`, `  fio-301 [${cpu}] ..... 10.000000: unmap: ${unmap6(iova, 0x1000)}`);
    }
    const { scenario, summary } = importTrace(`${out.join('\n')}\n`, opts());
    expect(scenario.steps).toHaveLength(2 * n);
    expect(scenario.platform.cpus).toBeGreaterThanOrEqual(4);
    expect(summary).toMatch(/^imported 300000 call\(s\) \(300000 map_page, 0 map_sg; 300000 unmapped\)/);
  });

  it('keeps runs apart when the IOVAs are not consecutive or another CPU mapped them, and counts unmaps of unknown IOVAs', () => {
    const text = lines6(
      [0, 'map', map6(0xffff0000, 0x40000000, 0x1000)],
      [1, 'map', map6(0xffff1000, 0x40001000, 0x1000)],
      [0, 'map', map6(0xfffe0000, 0x40002000, 0x1000)],
      [0, 'unmap', unmap6(0x10000000, 0x1000)],
    );
    const { scenario, summary } = importTrace(text, opts({ device: '0000:03:00.0' }));
    expect(scenario.steps.map((s) => s.op)).toEqual(['map_page', 'map_page', 'map_page']);
    expect(scenario.steps.map((s) => ('cpu' in s ? s.cpu : -1))).toEqual([0, 1, 0]);
    expect(scenario.platform.cpus).toBe(2);
    expect(scenario.devices[0]!.bdf).toBe('03:00.0');
    expect(summary).toContain('1 unmap(s) of mappings made before the trace began');
    // three physically contiguous pages stay one run
    expect(scenario.imported!.phys).toEqual([{ real: '0x40000000', model: expect.any(String), pages: 3 }]);
  });

  it('replays a trace the 6.1 model wrote itself with the IOVAs in it (no fidelity divergence)', () => {
    const s = modelScenario();
    const d = new Differential(s);
    while (d.remaining > 0) d.step();
    const text = traceOf(d.generic.model.machine.trace.events);
    expect(text).toContain(' map: IOMMU: iova=');
    const back = importTrace(text, opts());
    const doc = runScenario(back.scenario);
    expect(doc.divergences.filter((x) => x.kind === 'fidelity')).toEqual([]);
    expect(back.scenario.steps.filter((x) => x.op === 'map_sg').length).toBeGreaterThan(0);
    // the grouping recovered the calls: the same ops, each map of the bytes 6.1 mapped for it
    // (whole pages from each buffer's page: __iommu_dma_map and iommu_dma_map_sg)
    expect(back.scenario.steps.map((x) => x.op)).toEqual(s.steps.map((x) => x.op));
    const pages = (phys: number, len: number): number => Math.ceil(((phys % 0x1000) + len) / 0x1000) * 0x1000;
    const mapped = (x: typeof s): number[] => x.steps.flatMap((st) => (st.op === 'map_page' ? [pages(st.phys, st.size)] : st.op === 'map_sg' ? [st.sg.reduce((n, e) => n + pages(e.phys, e.length), 0)] : []));
    expect(mapped(back.scenario)).toEqual(mapped(s));
    expect(back.summary).not.toContain('made before the trace began');
  });
});

/** A small driver's life on qemu-strict: maps with offsets, sg lists, unmaps; an untrusted device beside a trusted one. */
function modelScenario(untrusted = false): ReturnType<typeof parseScenario> {
  const dev = untrusted ? 'tb' : 'nic';
  return parseScenario({
    format: 'dmadiff-scenario/1',
    platform: { agaw: 39, strict: true, cpus: 1 },
    devices: [{ id: dev, bdf: '00:04.0', dmaMask: 64, untrusted }],
    reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
    steps: [
      { op: 'map_page', dev, phys: '0x3400100', size: 0x200, dir: 'to_device', as: 'a' },
      { op: 'map_sg', dev, dir: 'from_device', sg: [{ phys: '0x3500000', length: 0x2000 }, { phys: '0x3600000', length: 0x1000 }, { phys: '0x3601000', length: 0x800 }], as: 'b' },
      { op: 'map_page', dev, phys: '0x3700000', size: 0x3000, dir: 'bidirectional', as: 'c' },
      { op: 'unmap', map: 'a' },
      { op: 'map_page', dev, phys: '0x3400100', size: 0x80, dir: 'to_device', as: 'd' },
      { op: 'unmap', map: 'b' },
      { op: 'unmap', map: 'c' },
      { op: 'map_sg', dev, dir: 'to_device', sg: [{ phys: '0x3800000', length: 0x1000 }, { phys: '0x3900000', length: 0x1000 }], as: 'e' },
    ],
  });
}

function traceOf(events: readonly TraceEvent[]): string {
  return `# tracer: nop\n${events.filter((e) => e.step >= 0).map((e) => renderTraceLine(e)).join('\n')}\n`;
}

describe('traces the 5.10 model wrote itself, read back', () => {
  it.each([false, true])('untrusted %s: the legacy model hands out the IOVAs its own trace shows, the calls and lengths come back', (untrusted) => {
    const s = modelScenario(untrusted);
    const d = new Differential(s);
    while (d.remaining > 0) d.step();
    const text = traceOf(d.legacy.model.machine.trace.events);
    expect(text).toContain(untrusted ? 'bounce_map_sg: ' : ' map_sg: ');
    const back = importTrace(text, opts()).scenario;
    expect(back.devices[0]!.untrusted).toBe(untrusted);
    expect(back.steps.map((x) => x.op)).toEqual(s.steps.map((x) => x.op));
    // exact lengths: from the unmaps (and bounce_map_single), never-unmapped singles aside
    const lengths = (x: typeof s): number[] => x.steps.flatMap((st) => (st.op === 'map_page' ? [st.size] : st.op === 'map_sg' ? st.sg.map((e) => e.length) : []));
    const want = lengths(s);
    const got = lengths(back);
    // "d" is never unmapped: 5.10's map_single prints its pages only (bounce_map_single prints the length)
    expect(got.slice(0, 5)).toEqual(want.slice(0, 5));
    expect(got[5]).toBe(untrusted ? 0x80 : 0x1000 - 0x100);
    expect(got.slice(6)).toEqual(want.slice(6));
    const doc = runScenario(back);
    expect(doc.divergences.filter((x) => x.kind === 'fidelity')).toEqual([]);
  });
});

describe('bad trace input: one line naming the line, exit 2', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['a line that is no event', '# tracer: nop\nthis is not ftrace\n', /^dmadiff: line 2: not an ftrace event line/],
    ['a map_single with a field missing', lines6([0, 'map_single', 'dev=0000:00:02.0 dev_addr=0x1000 size=4096']), /^dmadiff: line 4: map_single: expected "dev=DDDD:BB:DD.F dev_addr=0x\.\.\. phys_addr=0x\.\.\. size=N"/],
    ['an sg list cut short', lines6([0, 'map_sg', 'dev=0000:00:02.0 [1/2] dev_addr=0xfffff000 phys_addr=0x1000 size=4096']), /^dmadiff: line 4: the sg list of 2 entries that begins here is cut short/],
    ['an sg entry out of order', lines6([0, 'map_sg', 'dev=0000:00:02.0 [2/2] dev_addr=0xfffff000 phys_addr=0x1000 size=4096']), /^dmadiff: line 4: map_sg \[2\/2\] does not continue a list/],
    ['5.10 and 6.1 events mixed', lines6([0, 'map_single', 'dev=0000:00:02.0 dev_addr=0xfffff000 phys_addr=0x1000 size=4096'], [0, 'map', map6(0x1000, 0x2000, 0x1000)]), /^dmadiff: line 5: map is a 6\.1 event, but line 4 began a 5\.10 trace/],
    ['no IOMMU events at all', lines6([0, 'tracing_mark_write', 'hello']), /^dmadiff: no IOMMU map or unmap events/],
    ['a 6.1 range that does not add up', '# x\n fio-1 [000] ..... 1.0: map: IOMMU: iova=0x0000000000001000 - 0x0000000000003000 paddr=0x0000000000002000 size=4096\n', /^dmadiff: line 2: map: the IOVA range does not end at iova \+ size/],
    ['a physical address beyond 2^52', lines6([0, 'map_single', 'dev=0000:00:02.0 dev_addr=0xfffff000 phys_addr=0x20000000000000 size=4096']), /^dmadiff: line 4: physical address 0x20000000000000 is beyond what a PTE can hold/],
    ['a 6.1 run beyond 2^52, named by its own line', lines6([0, 'map', map6(0xffffe000, 0x1000, 0x1000)], [0, 'map', map6(0xfffff000, 0xffffffffff000, 0x2000)]), /^dmadiff: line 5: physical address 0xffffffffff000 is beyond what a PTE can hold/],
    ['ftrace lost events', lines6([0, 'map', map6(0xfffff000, 0x1000, 0x1000)]) + 'CPU:0 [LOST 500 EVENTS]\n' + lines6([0, 'unmap', unmap6(0xfffff000, 0x1000)]).split('\n').slice(3).join('\n'), /^dmadiff: line 5: the trace lost events here \(CPU:0 \[LOST 500 EVENTS\]\)/],
    ['trace-cmd dropped events', 'version = 6\ncpus=1\nCPU:0 [12 EVENTS DROPPED]\n' + lines6([0, 'map', map6(0xfffff000, 0x1000, 0x1000)]), /^dmadiff: line 3: the trace lost events here/],
    ['a 6.1 unmap larger than the call its IOVA names', lines6([0, 'map', map6(0xfffff000, 0x1000, 0x1000)], [0, 'unmap', unmap6(0xfffff000, 0x2000)]), /^dmadiff: line 5: unmap: size=8192 is more than the 4096 bytes mapped at consecutive IOVAs from line 4$/],
    ['a 6.1 unmap that ends inside a run', lines6([0, 'map', map6(0xffffe000, 0x1000, 0x2000)], [0, 'unmap', unmap6(0xffffe000, 0x1000)]), /^dmadiff: line 5: unmap: size=4096 ends inside the run mapped on line 4$/],
    ['a device number the model cannot hold', lines6([0, 'map_single', 'dev=0000:00:20.0 dev_addr=0xfffff000 phys_addr=0x1000 size=4096']), /^dmadiff: line 4: device 0000:00:20\.0 is not one the model can hold/],
  ];
  it.each(cases)('%s', async (_what, text, msg) => {
    const r = await cli(['import-trace', tmp.write(text)]);
    expect(r.code).toBe(2);
    expect(r.err.filter((l) => l !== '')).toHaveLength(1);
    expect(r.err[0]).toMatch(msg);
    expect(r.out.join('')).toBe('');
  });

  it.each([
    [['--mask', '7'], /--mask expects a number of bits 12\.\.64, got "7"/],
    [['--dir', 'sideways'], /--dir/],
    [['--platform', 'nowhere'], /--platform/],
    [['--device', 'zz:00.0'], /--device: expected a PCI address/],
    [['--device', '00:20.0'], /--device: expected a PCI address/],
    [['--device', '0001:00:02.0'], /--device: expected a PCI address/],
  ])('flag %j', async (flags, msg) => {
    const r = await cli(['import-trace', NVME, ...flags]);
    expect(r.code).toBe(2);
    expect(r.err.filter((l) => l !== '').join('\n')).toMatch(msg);
  });

  it('a bad --device is reported before the trace is parsed', async () => {
    const r = await cli(['import-trace', tmp.write('this is not ftrace\n'), '--device', '00:20.0']);
    expect(r.code).toBe(2);
    expect(r.err.filter((l) => l !== '')).toEqual(['dmadiff: --device: expected a PCI address like 00:02.0 or 0000:00:02.0 (domain 0, device up to 1f), got "00:20.0"']);
  });

  it('a trace file that cannot be read', async () => {
    const r = await cli(['import-trace', tmp.missing()]);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/^dmadiff: cannot read .*: ENOENT$/);
  });
});
