/**
 * The HTML report (reports/html.ts): one self-contained page. Checked as a string (no external
 * reference, every document string escaped) and in real headless Chromium (the structure the
 * browser builds, and that loading it makes no request besides the page itself).
 *
 * Chromium is Debian's `chromium` package at /usr/bin/chromium; .ci/run installs it when missing.
 * The served-page test uses the asynchronous execFile: execFileSync would block the event loop
 * that the counting HTTP server needs to answer Chromium.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { renderHtml } from '../../reports/html.js';
import { REPORT_FORMAT, type ReportDoc, type Walk } from '../../reports/types.js';

const CHROMIUM = '/usr/bin/chromium';
const TITLE = 'FAIL on qemu-strict: [consumer] fault at step 1: legacy-intel faults on a device read of m1 +0x0, dma-iommu completes';
const FAULT_TEXT = 'PTE Read access is not set';
const DETAIL = 'device read of m1 +0x0 (4 bytes): legacy-intel faults <b>reason 0x06</b>, dma-iommu reads 00 00 00 01';

/** A walk of IOVA 0xfffff000 of nvme [00:03.0]: root, context and the four page-table levels. */
function walkOf(path: Walk['path'], leaf: string, bits: string[], result: string): Walk {
  return {
    path, device: 'nvme', bdf: '00:03.0', iova: '0xfffff000', why: 'm1 +0',
    entries: [
      { level: 'root', addr: '0x10000000', value: '0x0000000010001001', bits: ['P', 'CTP=0x10001000'] },
      { level: 'context', addr: '0x10001180', value: '0x0000000000000102:0x0000000010002001', bits: ['P', 'TT=0', 'AW=2', 'DID=1', 'ADDR=0x10002000'] },
      { level: 4, addr: '0x10002000', value: '0x0000000010003003', bits: ['R', 'W', 'ADDR=0x10003000'] },
      { level: 3, addr: '0x10003018', value: '0x0000000010004003', bits: ['R', 'W', 'ADDR=0x10004000'] },
      { level: 2, addr: '0x10004ff8', value: '0x0000000010005003', bits: ['R', 'W', 'ADDR=0x10005000'] },
      { level: 1, addr: '0x10005ff8', value: leaf, bits },
    ],
    result, iotlb: ['DID 1 iova 0xfffff000 level 1 phys 0x1000000 ' + bits.filter((b) => b === 'R' || b === 'W').join('/')],
    contextCache: ['SID 0x0018 DID 1 TT=0 AW=2'],
  };
}

/** One FAIL from a search on qemu-strict, as report.ts would build it. */
function fixture(): ReportDoc {
  return {
    format: REPORT_FORMAT, command: 'gate', verdict: 'FAIL', releases: { legacy: '5.10.262', generic: '6.1.192' },
    coverage: [
      { name: 'qemu-strict', kind: 'platform', runs: 200, steps: 1843, failures: 1, allowlisted: { D1: 3, D3: 1 }, unhit: ['caching-mode flush'], tokens: ['dmadiff1.eyJzZWVkIjo0Mn0'], failureIds: ['3f2a9c1d0b7e'] },
      { name: '3f2a9c1d.scenario.json', kind: 'corpus', runs: 1, steps: 7, failures: 0, allowlisted: {}, unhit: [], tokens: [], failureIds: [] },
    ],
    failures: [{
      id: '3f2a9c1d0b7e', title: TITLE, platform: 'qemu-strict', source: 'search', token: 'dmadiff1.eyJzZWVkIjo0Mn0',
      scenarioFile: 'dmadiff-failures/3f2a9c1d0b7e.scenario.json', scenario: { format: 'dmadiff-scenario/1' },
      steps: [
        { index: 0, call: 'map_page m1 = nvme 0x1000000 4096 from_device', legacy: 'iova 0xfffff000', generic: 'iova 0xfffff000', divergences: [1] },
        { index: 1, call: 'device_read nvme m1 +0x0 4', legacy: 'fault 0x06 (PTE Read access is not set)', generic: 'ok 00 00 00 01', divergences: [0] },
      ],
      divergences: [
        { step: 1, kind: 'fault', detail: DETAIL, fails: true, map: 'm1', device: 'nvme' },
        { step: 0, kind: 'permission', detail: 'm1: legacy-intel maps W, dma-iommu R W (ZLR)', allowlisted: 'D3', fails: false, map: 'm1', device: 'nvme' },
      ],
      focus: [{
        divergence: 0, steps: [0, 1],
        trace: {
          legacy: [{ step: 0, event: 'map', text: 'IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x0000000001000000 size=4096' }],
          generic: [{ step: 0, event: 'map', text: 'IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x0000000001000000 size=4096' }],
          diff: [
            { op: ' ', step: 0, line: 'map nvme p:0x1000000' },
            { op: '-', step: 1, line: 'fault nvme p:0x1000000 read' },
            { op: '+', step: 1, line: 'read nvme p:0x1000000' },
          ],
        },
        log: {
          legacy: [
            { step: 1, text: 'DMAR: DRHD: handling fault status reg 2' },
            {
              step: 1, text: 'DMAR: [DMA Read] Request device [00:03.0] PASID ffffffff fault addr fffff000 [fault reason 06] PTE Read access is not set',
              fault: { reason: 6, reasonText: FAULT_TEXT, access: 'read', addr: '0xfffff000', device: '00:03.0' },
            },
          ],
          generic: [],
        },
        walks: [
          walkOf('legacy-intel', '0x0000000001000002', ['W', 'ADDR=0x1000000'], 'fault 0x06 (PTE Read access is not set)'),
          walkOf('dma-iommu', '0x0000000001000003', ['R', 'W', 'ADDR=0x1000000'], 'phys 0x1000000 R W'),
        ],
        reachable: [{ side: 'generic only', phys: '0x1000000', perm: 'R', mapping: 'm1 +0x0' }],
      }],
    }],
  };
}

const html = renderHtml(fixture());
const temps: string[] = [];

/** A fresh directory under the system temp dir, removed after the tests. */
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'dmadiff-html-'));
  temps.push(d);
  return d;
}

/** Chromium's arguments for dumping the DOM of `url` with a fresh profile and no background traffic. */
function chromiumArgs(url: string): string[] {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium package (apt-get install -y chromium); .ci/run does this`);
  }
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${tempDir()}`, '--dump-dom', url];
}

/** The part of `dom` from the first `<table class="cls"` to its `</table>`. */
function tableOf(dom: string, cls: string, from = 0): string {
  const start = dom.indexOf(`<table class="${cls}"`, from);
  expect(start, `table.${cls}`).toBeGreaterThanOrEqual(0);
  return dom.slice(start, dom.indexOf('</table>', start));
}

/** How many times `needle` occurs in `hay`. */
function count(hay: string, needle: string): number {
  return hay.split(needle).length - 1;
}

afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe('HTML report: the string', () => {
  it('references nothing outside itself and carries the CSP', () => {
    for (const s of ['http://', 'https://', 'src=', '<link', '<script', 'url(', '@import']) expect(html, s).not.toContain(s);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<title>dmadiff report — gate: FAIL</title>');
  });

  it('escapes every document string', () => {
    expect(html).not.toContain('<b>reason');
    expect(html).toContain('&lt;b&gt;reason 0x06&lt;/b&gt;');
    const evil: ReportDoc = { ...fixture(), command: `<x>&"'` };
    expect(renderHtml(evil)).toContain('dmadiff report — &lt;x&gt;&amp;&quot;&#39;: FAIL');
  });

  it('has the sections the brief names', () => {
    expect(html).toContain('id="coverage"');
    expect(html).toContain('D1×3, D3×1');
    expect(html).toContain('<a href="#failure-3f2a9c1d0b7e">3f2a9c1d0b7e</a>');
    expect(html).toContain('<details open class="failure" id="failure-3f2a9c1d0b7e">');
    expect(html).toContain('<code class="token">dmadiff replay dmadiff1.eyJzZWVkIjo0Mn0</code>');
    expect(count(html, '<details open class="focus">')).toBe(1);
    expect(count(html, '<div class="walk">')).toBe(2);
    expect(html).toContain('reason 0x06 PTE Read access is not set · read · addr 0xfffff000 · device 00:03.0');
  });
});

describe('HTML report: in headless Chromium', () => {
  it('builds the structure from a file:// load', () => {
    const dir = tempDir();
    const file = join(dir, 'report.html');
    writeFileSync(file, html);
    const dom = execFileSync(CHROMIUM, chromiumArgs(`file://${file}`), { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    expect(dom).toContain(`<h2 class="failure-title">${TITLE}</h2>`);
    // the <b> of the detail stayed text
    expect(dom).toContain('&lt;b&gt;reason 0x06&lt;/b&gt;');
    expect(dom).not.toContain('<b>reason');
    const diff = tableOf(dom, 'trace-diff');
    expect(count(diff, '<tr class="')).toBe(3);
    for (const c of ['same', 'only-legacy', 'only-generic']) expect(count(diff, `<tr class="${c}">`), c).toBe(1);
    const pte = tableOf(dom, 'pte-table');
    expect(count(pte, '<tr class="entry">')).toBe(6);
    expect(count(pte, '<td>root</td>') + count(pte, '<td>context</td>')).toBe(2);
    expect(count(dom, '<table class="pte-table"')).toBe(2);
    expect(dom).toContain(`reason 0x06 ${FAULT_TEXT}`);
    // both steps diverged: step 1 fails, step 0 only by the allowlisted D3
    const stepsTable = tableOf(dom, 'steps');
    expect(count(stepsTable, '<tr class="diverged')).toBe(2);
    expect(count(stepsTable, '<tr class="diverged allowlisted">')).toBe(1);
  }, 90_000);

  it('loads nothing but the page itself when served over HTTP', async () => {
    const requests: string[] = [];
    const server: Server = createServer((req, res) => {
      requests.push(`${req.method ?? '?'} ${req.url ?? '?'}`);
      if (req.url === '/report.html') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { stdout } = await promisify(execFile)(CHROMIUM, chromiumArgs(`http://127.0.0.1:${port}/report.html`), { encoding: 'utf8', timeout: 60_000 });
      expect(stdout).toContain(`<h2 class="failure-title">${TITLE}</h2>`);
      // Exactly the page. Chromium 150 does fetch /favicon.ico for a page without a CSP, but the
      // report's default-src 'none' forbids that too, so not even the favicon is requested.
      expect(requests).toEqual(['GET /report.html']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 90_000);
});
