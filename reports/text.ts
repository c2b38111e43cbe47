/**
 * The report as terminal text: colour (ANSI) only when asked for, which the CLI does only on a
 * TTY; the words carry everything without it ("-" legacy only, "+" generic only).
 */
import { must } from '../kernel/assert.js';
import { reasonHex } from '../vtd/fault.js';
import type { CoverageRow, DivergenceFocus, DivergenceRow, FailureReport, LogLine, ReportDoc, Walk } from './types.js';

interface Paint {
  red: (s: string) => string;
  green: (s: string) => string;
  bold: (s: string) => string;
  dim: (s: string) => string;
}

function paint(color: boolean): Paint {
  const sgr = (code: string) => (s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { red: sgr('31'), green: sgr('32'), bold: sgr('1'), dim: sgr('2') };
}

/** a column is padded to at most this (one long cell, a 32-segment list, overflows instead of widening every row) */
const MAX_COLUMN = 64;

/** Columns padded to their widest cell, up to MAX_COLUMN. */
function columns(rows: readonly string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.min(MAX_COLUMN, Math.max(widths[i] ?? 0, c.length))));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
}

function logText(p: Paint, l: LogLine): string {
  const f = l.fault;
  const line = `    [step ${l.step}] ${l.text}`;
  if (f === undefined) return line;
  return `${line}\n      ${p.red(`fault reason ${reasonHex(f.reason)} (${f.reasonText}), DMA ${f.access} of ${f.addr} by ${f.device}`)}`;
}

function walkText(w: Walk): string[] {
  const out = [`    ${w.path} ${w.device} [${w.bdf}] iova ${w.iova} (${w.why})`];
  for (const line of columns(w.entries.map((e) => [typeof e.level === 'number' ? `L${e.level}` : e.level, e.addr, e.value, e.bits.join(' ')]))) out.push(`      ${line}`);
  out.push(`      => ${w.result}`);
  for (const e of w.iotlb) out.push(`      IOTLB: ${e}`);
  for (const e of w.contextCache) out.push(`      context cache: ${e}`);
  return out;
}

function focusText(p: Paint, f: FailureReport, x: DivergenceFocus): string[] {
  const d = divergenceOf(f, x.divergence);
  const out = [p.bold(`  divergence at step ${d.step} [${d.kind}]: ${d.detail}`), `  steps involved: ${x.steps.join(', ')}`];
  if (x.trace.diff.length > 0) {
    out.push('  trace diff (what each path\'s events account for, a line a page; - legacy only, + generic only):');
    for (const r of x.trace.diff) {
      const line = `    ${r.op} [step ${r.step}] ${r.line}`;
      out.push(r.op === '-' ? p.red(line) : r.op === '+' ? p.green(line) : p.dim(line));
    }
  }
  for (const [name, lines] of [['legacy-intel (5.10)', x.trace.legacy], ['dma-iommu (6.1)', x.trace.generic]] as const) {
    out.push(`  trace, ${name}:`);
    for (const t of lines) out.push(`    [step ${t.step}] ${t.event}: ${t.text}`);
    if (lines.length === 0) out.push('    (no events)');
  }
  for (const [name, lines] of [['legacy-intel (5.10)', x.log.legacy], ['dma-iommu (6.1)', x.log.generic]] as const) {
    out.push(`  kernel log, ${name}:`);
    for (const l of lines) out.push(logText(p, l));
    if (lines.length === 0) out.push('    (empty)');
  }
  if (x.walks.length > 0) out.push('  walks:');
  for (const w of x.walks) out.push(...walkText(w));
  if (x.reachable.length > 0) {
    out.push('  reachable-set difference:');
    for (const line of columns(x.reachable.map((r) => [r.side, r.phys, r.perm, r.mapping]))) out.push(`    ${line}`);
  }
  return out;
}

/** A divergence a step or a focus names by its index in the failure's list. */
export function divergenceOf(f: FailureReport, k: number): DivergenceRow {
  return must(f.divergences[k], `divergence ${k} of the failure's list`);
}

/** What a divergence is to the gate, in a word: FAIL, its allowlist entry, or not checked (--no-trace). */
export function gateWord(d: DivergenceRow): string {
  return d.fails ? 'FAIL' : (d.allowlisted ?? 'not checked');
}

function renderFailureText(f: FailureReport, color = false): string[] {
  const p = paint(color);
  const out = [p.red(p.bold(f.title)), `  platform ${f.platform}, from the ${f.source}${f.scenarioFile !== undefined ? `, scenario ${f.scenarioFile}` : ''}`];
  if (f.token !== undefined) out.push(`  replay: dmadiff replay ${f.token}`);
  out.push('  steps:');
  const rows = f.steps.map((s) => [`#${s.index}`, s.call, `legacy: ${s.legacy}`, `generic: ${s.generic}`, s.divergences.map((k) => gateWord(divergenceOf(f, k))).join(',')]);
  for (const line of columns(rows)) out.push(`    ${line}`);
  for (const x of f.focus) out.push(...focusText(p, f, x));
  return out;
}

/** The coverage table's head and one row's cells (text and markdown). */
export const COVERAGE_HEAD: readonly string[] = ['', 'runs', 'steps', 'failures', 'allowlisted', 'unreached'];

export function coverageCells(c: CoverageRow): string[] {
  return [`${c.kind === 'platform' ? '' : `${c.kind} `}${c.name}`, String(c.runs), String(c.steps), String(c.failures), allowlistedText(c.allowlisted), c.unhit.join(', ') || '-'];
}

/** Which kernels the two models follow, as every format states it. */
export function releasesLine(doc: ReportDoc): string {
  return `legacy-intel follows Linux ${doc.releases.legacy}, dma-iommu Linux ${doc.releases.generic}`;
}

/** The whole report as text. */
export function renderReportText(doc: ReportDoc, color = false): string {
  const p = paint(color);
  const out = [p.bold(`dmadiff ${doc.command}: ${doc.verdict}`), releasesLine(doc)];
  if (doc.coverage.length > 0) out.push('', ...columns([[...COVERAGE_HEAD], ...doc.coverage.map(coverageCells)]));
  for (const f of doc.failures) out.push('', ...renderFailureText(f, color));
  return `${out.join('\n')}\n`;
}

/** "D1 x3, D3 x1", or "-" */
export function allowlistedText(a: Readonly<Record<string, number>>): string {
  return (
    Object.entries(a)
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([id, n]) => `${id} x${n}`)
      .join(', ') || '-'
  );
}
