/**
 * The report as GitHub-flavoured Markdown for $GITHUB_STEP_SUMMARY: the verdict, the coverage
 * table, and each failure collapsible (<details>), its trace diff as a diff block and its walks
 * as PTE tables.
 */
import { reasonHex } from '../vtd/fault.js';
import { COVERAGE_HEAD, coverageCells, divergenceOf, gateWord, releasesLine } from './text.js';
import type { FailureReport, ReportDoc } from './types.js';

/** A table cell: pipes and newlines would break the row. */
function cell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function table(head: readonly string[], rows: readonly string[][]): string[] {
  return [`| ${head.map(cell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}

/** A fenced block whose fence no line of the body can close. */
function fenced(lang: string, body: readonly string[]): string[] {
  let fence = '```';
  while (body.some((l) => l.startsWith(fence))) fence += '`';
  return [`${fence}${lang}`, ...body, fence];
}

function failureMarkdown(f: FailureReport): string[] {
  const out = ['<details open>', `<summary><b>${cell(f.title).replace(/</g, '&lt;')}</b></summary>`, ''];
  out.push(`Platform \`${f.platform}\`, from the ${f.source}.${f.scenarioFile !== undefined ? ` Scenario: \`${f.scenarioFile}\`.` : ''}`, '');
  if (f.token !== undefined) out.push(...fenced('sh', [`dmadiff replay ${f.token}`]), '');
  out.push(...table(['#', 'call', 'legacy-intel (5.10)', 'dma-iommu (6.1)', 'divergence'], f.steps.map((s) => [String(s.index), s.call, s.legacy, s.generic, s.divergences.map((k) => divergenceOf(f, k)).map((d) => `${gateWord(d)} ${d.kind}`).join(', ')])), '');
  for (const x of f.focus) {
    const d = divergenceOf(f, x.divergence);
    out.push(`#### Step ${d.step} \`${d.kind}\``, '', cell(d.detail), '');
    if (x.trace.diff.length > 0) out.push('Trace accounting, a line a page (`-` legacy only, `+` generic only):', '', ...fenced('diff', x.trace.diff.map((r) => `${r.op}[step ${r.step}] ${r.line}`)), '');
    const events = [...x.trace.legacy.map((t) => `5.10 [step ${t.step}] ${t.event}: ${t.text}`), ...x.trace.generic.map((t) => `6.1  [step ${t.step}] ${t.event}: ${t.text}`)];
    if (events.length > 0) out.push('Trace events:', '', ...fenced('text', events), '');
    const faults = [...x.log.legacy.map((l) => ['5.10', l] as const), ...x.log.generic.map((l) => ['6.1', l] as const)].flatMap(([k, l]) => (l.fault === undefined ? [] : [[k, String(l.step), reasonHex(l.fault.reason), l.fault.reasonText, l.fault.access, l.fault.addr, l.fault.device]]));
    if (faults.length > 0) out.push(...table(['kernel', 'step', 'reason', 'meaning', 'access', 'address', 'device'], faults), '');
    for (const w of x.walks) {
      out.push(`Walk of \`${w.iova}\` on ${w.path} (${cell(w.why)}): **${cell(w.result)}**`, '');
      out.push(...table(['level', 'entry at', 'value', 'bits'], w.entries.map((e) => [String(e.level), e.addr, e.value, e.bits.join(' ')])), '');
      for (const e of [...w.iotlb.map((t) => `IOTLB: ${t}`), ...w.contextCache.map((t) => `context cache: ${t}`)]) out.push(`- ${cell(e)}`);
      out.push('');
    }
    if (x.reachable.length > 0) out.push(...table(['side', 'phys', 'perm', 'mapping'], x.reachable.map((r) => [r.side, r.phys, r.perm, r.mapping])), '');
  }
  out.push('</details>', '');
  return out;
}

export function renderMarkdown(doc: ReportDoc): string {
  const out = [`### dmadiff ${doc.command}: ${doc.verdict}`, '', `${releasesLine(doc)}.`, ''];
  if (doc.coverage.length > 0) out.push(...table([...COVERAGE_HEAD], doc.coverage.map(coverageCells)), '');
  for (const f of doc.failures) out.push(...failureMarkdown(f));
  return `${out.join('\n')}\n`;
}
