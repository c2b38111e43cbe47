/**
 * The divergence report's content on real failures: the i915 blocker and seeded bugs of four
 * kinds (reachable, cpu-view, trace, device-view), taken from the seeded-bug lock's tokens. The
 * expected values come from the scenarios and the VT-d format, not from the report code.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { replayChunk } from '../../harness/search/property.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { Differential } from '../../harness/run/runner.js';
import { scenarioToJson } from '../../harness/workload/scenario.js';
import { decodeToken } from '../../harness/search/token.js';
import { buildFailure } from '../../reports/report.js';
import { decodeFaultLine } from '../../reports/fault-line.js';
import { renderJunit } from '../../reports/junit.js';
import { renderMarkdown } from '../../reports/markdown.js';
import { renderReportText } from '../../reports/text.js';
import { reportDoc, writeReports } from '../../reports/write.js';
import type { FailureReport } from '../../reports/types.js';
import { TmpDirs, cli } from '../search/helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

const LOCK = JSON.parse(readFileSync(new URL('../fixtures/seeded-bug-lock.json', import.meta.url), 'utf8')) as { failures: Array<{ name: string; token: string }> };

/** The shrunk failing scenario of a seeded bug, regenerated from its locked token, and its report. */
function seededReport(name: string): FailureReport {
  const entry = LOCK.failures.find((f) => f.name === name)!;
  const d = decodeToken(entry.token);
  const f = replayChunk(d.cfg, d.token.seed, d.token.path)!;
  expect(f, `${name} still fails at its locked token`).toBeDefined();
  return buildFailure({ scenario: f.scenario, platform: d.token.platform, source: 'search', token: entry.token });
}

/** The i915 blocker: two entries merged by 6.1 into one segment, walked to the end by i915. */
const I915 = parseScenario({
  format: 'dmadiff-scenario/1',
  platform: { agaw: 48, strict: true, cpus: 1 },
  devices: [{ id: 'gpu', bdf: '00:02.0', dmaMask: 64 }],
  reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
  steps: [
    { op: 'map_sg', dev: 'gpu', dir: 'to_device', as: 's0', sg: [ { phys: '0x1000000', length: 4096 }, { phys: '0x1001000', length: 4096 } ] },
    { op: 'consumer_walk', map: 's0', consumer: 'i915' },
  ],
});

describe('report of the i915 divergence', () => {
  const r = buildFailure({ scenario: I915, platform: 'qemu-strict', source: 'scenario' });
  const focus = r.focus[0]!;

  it('names the consumer divergence at the walk, with both paths side by side', () => {
    expect(r.focus).toHaveLength(1);
    expect(r.divergences[focus.divergence]!.kind).toBe('consumer');
    expect(r.title).toMatch(/^FAIL on qemu-strict: step 1 \[consumer\]/);
    expect(r.steps[0]!.legacy).toBe('2 seg: 0xffffe000+4096 0xfffff000+4096');
    expect(r.steps[0]!.generic).toBe('1 seg: 0xffffe000+8192');
    expect(r.steps[1]!.generic).toBe('FAULT 0x04 read at 0xfffffffffffff000');
  });

  it("decodes 6.1's DMAR fault line: reason 0x04, its text, the access and the address", () => {
    const faults = focus.log.generic.filter((l) => l.fault !== undefined);
    expect(faults).toHaveLength(1);
    expect(faults[0]!.fault).toEqual({ reason: 4, reasonText: 'Access beyond MGAW', access: 'read', addr: '0xfffffffffffff000', device: '00:02.0' });
    expect(focus.log.legacy.some((l) => l.fault !== undefined)).toBe(false);
  });

  it('walks each segment to its PTE: the leaf maps the entry page, read-only (to_device)', () => {
    const legacy = focus.walks.filter((w) => w.path === 'legacy-intel');
    expect(legacy.map((w) => w.iova)).toEqual(['0xffffe000', '0xfffff000']);
    for (const [w, phys] of [[legacy[0]!, '0x1000000'], [legacy[1]!, '0x1001000']] as const) {
      expect(w.entries.map((e) => e.level)).toEqual(['root', 'context', 4, 3, 2, 1]);
      const leaf = w.entries[5]!;
      expect(leaf.bits).toEqual(['R', `ADDR=${phys}`]);
      // bits 0 (R) set, 1 (W) clear, the address in 63:12
      expect(BigInt(leaf.value)).toBe(BigInt(phys) | 1n);
      expect(w.result).toBe(`phys ${phys} R`);
    }
    const faulting = focus.walks.find((w) => w.path === 'dma-iommu' && w.iova === '0xfffffffffffff000')!;
    expect(faulting.result).toMatch(/^fault 0x04 \(Access beyond MGAW\)/);
  });

  it('aligns the traces by what they account for: the same two buffer pages on both paths', () => {
    expect(focus.trace.diff.map((d) => `${d.op}${d.line}`)).toEqual([' map 0000:00:02.0 p:0x1000000', ' map 0000:00:02.0 p:0x1001000']);
    expect(focus.trace.legacy.map((t) => t.event)).toEqual(['intel_iommu:map_sg', 'intel_iommu:map_sg']);
    expect(focus.trace.generic.map((t) => t.event)).toEqual(['iommu:map']);
  });
});

describe('reports of seeded bugs', () => {
  it('reachable (noIotlbSync): the pages only one path reaches, each with its mapping', () => {
    const r = seededReport('noIotlbSync');
    const x = r.focus.find((f) => r.divergences[f.divergence]!.kind === 'reachable')!;
    expect(x.reachable.length).toBeGreaterThan(0);
    // the generic path skipped the IOTLB flush after an unmap: a stale translation stays
    expect(x.reachable.some((p) => p.side === 'generic only')).toBe(true);
    for (const p of x.reachable) expect(p.phys).toMatch(/^0x[0-9a-f]+000$/);
    expect(x.reachable.every((p) => !p.mapping.includes('no mapping'))).toBe(true);
  });

  it('cpu-view (unmapCopyBackFromDeviceOnly): the unmap and the mapping it names, walked on both paths', () => {
    const r = seededReport('unmapCopyBackFromDeviceOnly');
    const x = r.focus.find((f) => r.divergences[f.divergence]!.kind === 'cpu-view')!;
    const d = r.divergences[x.divergence]!;
    expect(x.steps[x.steps.length - 1]).toBe(d.step);
    expect(x.steps.length).toBe(2);
    // after the unmap (strict), neither path's PTE for the buffer is present any more
    for (const w of x.walks) expect(w.result).toMatch(/not present at level|fault/);
    expect(new Set(x.walks.map((w) => w.path))).toEqual(new Set(['legacy-intel', 'dma-iommu']));
  });

  it('trace (noMapTraceAtomic): the diff shows map lines only the legacy path accounts for', () => {
    const r = seededReport('noMapTraceAtomic');
    const x = r.focus.find((f) => r.divergences[f.divergence]!.kind === 'trace')!;
    const only = x.trace.diff.filter((d) => d.op === '-');
    expect(only.length).toBeGreaterThan(0);
    for (const d of only) expect(d.line).toMatch(/^map \S+ [pbcs]:/);
    expect(x.trace.diff.some((d) => d.op === '+')).toBe(false);
    expect(x.trace.generic.some((t) => t.event === 'iommu:map')).toBe(false);
  });

  it('trace under --no-trace: the divergence is listed, not checked, and no format calls it FAIL', () => {
    const entry = LOCK.failures.find((f) => f.name === 'noMapTraceAtomic')!;
    const d = decodeToken(entry.token);
    const f = replayChunk(d.cfg, d.token.seed, d.token.path)!;
    const r = buildFailure({ scenario: f.scenario, platform: d.token.platform, source: 'search', token: entry.token, checkTrace: false });
    const traces = r.divergences.filter((x) => x.kind === 'trace');
    expect(traces.length).toBeGreaterThan(0);
    for (const x of traces) expect(x.fails).toBe(false);
    const doc = reportDoc('gate', 'PASS', [], [r]);
    const text = renderReportText(doc);
    expect(text).toContain('not checked');
    expect(text).not.toMatch(/\bFAIL\b.*trace|,FAIL\b/);
    expect(renderMarkdown(doc)).toContain('not checked trace');
    expect(renderMarkdown(doc)).not.toContain('FAIL trace');
  });

  it('device-view (noBouncePaddingZero): the bounce slot the generic IOVA reaches is named', () => {
    const r = seededReport('noBouncePaddingZero');
    const x = r.focus.find((f) => r.divergences[f.divergence]!.kind === 'device-view')!;
    const g = x.walks.filter((w) => w.path === 'dma-iommu');
    expect(g.length).toBeGreaterThan(0);
    expect(g[0]!.why).toMatch(/swiotlb slot/);
  });
});

describe('formats', () => {
  const r = buildFailure({ scenario: I915, platform: 'qemu-strict', source: 'search', token: 'dmadiff1.example' });
  const row = { name: 'qemu-strict', kind: 'platform' as const, runs: 3, steps: 40, failures: 1, allowlisted: { D1: 2 }, unhit: [], tokens: ['dmadiff1.example'], failureIds: [r.id] };
  const clean = { ...row, name: 'caching-mode', failures: 0, tokens: [], failureIds: [] };
  const doc = reportDoc('gate', 'FAIL', [row, clean], [r]);

  it('JUnit: well-formed for a real XML parser, one case per platform, a failure with its token', () => {
    const xml = renderJunit(doc);
    expect(XMLValidator.validate(xml)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@' }).parse(xml) as {
      testsuites: { '@tests': string; '@failures': string; testsuite: { testcase: Array<{ '@name': string; failure?: { '@message': string; '#text': string } }> } };
    };
    expect(parsed.testsuites['@tests']).toBe('2');
    expect(parsed.testsuites['@failures']).toBe('1');
    const cases = parsed.testsuites.testsuite.testcase;
    expect(cases.map((c) => c['@name'])).toEqual(['qemu-strict', 'caching-mode']);
    expect(cases[0]!.failure!['@message']).toBe(r.title);
    expect(cases[0]!.failure!['#text']).toContain('dmadiff replay dmadiff1.example');
    expect(cases[1]!.failure).toBeUndefined();
  });

  it('text: colour only when asked; Markdown: a diff block and the PTE table', () => {
    expect(renderReportText(doc, false)).not.toContain('\x1b[');
    expect(renderReportText(doc, true)).toContain('\x1b[31m');
    const md = renderMarkdown(doc);
    expect(md).toContain('```diff\n [step 0] map 0000:00:02.0 p:0x1000000');
    expect(md).toMatch(/\| 1 \| 0x[0-9a-f]+ \| 0x0000000001000001 \| R ADDR=0x1000000 \|/);
    expect(md).toContain('| 6.1 | 1 | 0x04 | Access beyond MGAW | read | 0xfffffffffffff000 | 00:02.0 |');
  });

  it('--report DIR writes every format, JSON as dmadiff-report/1', () => {
    const dir = join(tmp.fresh('report'), 'out');
    const paths = writeReports(dir, doc);
    // the five formats the README promises, named here rather than taken from the code
    const names = ['report.txt', 'report.json', 'junit.xml', 'summary.md', 'report.html'];
    expect(paths.map((p) => p.slice(dir.length + 1))).toEqual(names);
    for (const n of names) expect(existsSync(join(dir, n)), n).toBe(true);
    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as { format: string; failures: Array<{ focus: unknown[] }> };
    expect(json.format).toBe('dmadiff-report/1');
    expect(json.failures[0]!.focus).toHaveLength(1);
  });

  it('decodes 5.10\'s fault line too (decimal reason, address without 0x)', () => {
    expect(decodeFaultLine('DMAR: [DMA Write] Request device [00:03.0] PASID ffffffff fault addr fffff000 [fault reason 05] PTE Write access is not set')).toEqual({
      reason: 5,
      reasonText: 'PTE Write access is not set',
      access: 'write',
      addr: '0xfffff000',
      device: '00:03.0',
    });
    expect(decodeFaultLine('DMAR: DRHD: handling fault status reg 2')).toBeUndefined();
  });
});

/** The i915 scenario written to a file of a fresh directory. */
function i915File(tag: string): { dir: string; file: string } {
  const dir = tmp.fresh(tag);
  const file = join(dir, 'i915.scenario.json');
  writeFileSync(file, JSON.stringify(scenarioToJson(I915)));
  return { dir, file };
}

describe('dmadiff scenario FILE --report', () => {
  it('runs the scenario once: the printed result and the report come from the same run', async () => {
    const { dir, file } = i915File('scenario-report');
    const steps = vi.spyOn(Differential.prototype, 'step');
    const r = await cli(['scenario', file, '--json', '--strict-iova', '--report', join(dir, 'out')]);
    expect(steps).toHaveBeenCalledTimes(I915.steps.length);
    steps.mockRestore();
    expect(r.code).toBe(1);
    // the result printed is what a run without --report prints
    const plain = await cli(['scenario', file, '--json', '--strict-iova']);
    expect(r.out.filter((l) => !l.startsWith('report: '))).toEqual(plain.out);
    const json = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8')) as { verdict: string; coverage: Array<{ kind: string }> };
    expect(json.verdict).toBe('DIVERGES');
    expect(json.coverage.map((c) => c.kind)).toEqual(['scenario']);
  });
});

describe('dmadiff report FILE', () => {
  it('prints the report, exits 1 on a divergence, and 2 on an unreadable file', async () => {
    const { dir, file } = i915File('report-cli');
    const r = await cli(['report', file, '--report', join(dir, 'out')]);
    expect(r.code).toBe(1);
    expect(r.out.join('\n')).toContain('fault reason 0x04 (Access beyond MGAW), DMA read of 0xfffffffffffff000 by 00:02.0');
    expect(readFileSync(join(dir, 'out', 'report.html'), 'utf8')).toContain('class="failure-title"');
    // its one row is the scenario file, not a corpus entry
    const json = JSON.parse(readFileSync(join(dir, 'out', 'report.json'), 'utf8')) as { coverage: Array<{ name: string; kind: string }> };
    expect(json.coverage.map((c) => [c.name, c.kind])).toEqual([['i915.scenario.json', 'scenario']]);
    expect(readFileSync(join(dir, 'out', 'junit.xml'), 'utf8')).toContain('classname="dmadiff.scenario" name="i915.scenario.json"');
    const bad = await cli(['report', join(dir, 'missing.json')]);
    expect(bad.code).toBe(2);
    expect(bad.err.filter((l) => l !== '')).toHaveLength(1);
  });
});
