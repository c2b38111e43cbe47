/**
 * The report as one self-contained HTML5 page (README "Reports"): inline CSS only, no script, no
 * external reference of any kind (a Content-Security-Policy of default-src 'none' forbids them
 * anyway), collapsible sections through <details>. Every string of the document is escaped.
 */
import type {
  CoverageRow,
  DivergenceFocus,
  DivergenceRow,
  FailureReport,
  LogLine,
  ReachPage,
  ReportDoc,
  StepRow,
  TraceDiffRow,
  TraceLine,
  Walk,
} from './types.js';
import { reasonHex } from '../vtd/fault.js';
import { releasesLine } from './text.js';

const CSP = "default-src 'none'; style-src 'unsafe-inline'";

const CSS = `
:root { --red: #b3261e; --red-bg: #fde7e5; --green: #1e6b2e; --green-bg: #e3f4e6; --grey: #666; --grey-bg: #f3f3f3; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 0.5rem 1rem; max-width: 110rem; color: #1b1b1b; }
h1 { font-size: 1.4rem; margin: 0.5rem 0; }
h2, h3, h4 { margin: 0.3rem 0; }
h2.failure-title { display: inline; font-size: 1.1rem; color: var(--red); }
h3 { font-size: 1rem; display: inline; }
h4 { font-size: 0.95rem; }
code, pre, td.mono, .mono { font-family: ui-monospace, monospace; font-size: 12.5px; }
.wrap { overflow-x: auto; max-width: 100%; margin: 0.3rem 0 0.8rem; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; white-space: pre; }
th { background: #eee; }
details { border: 1px solid #ccc; border-radius: 4px; padding: 0.3rem 0.6rem; margin: 0.6rem 0; }
details.failure { border-left: 4px solid var(--red); }
summary { cursor: pointer; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0 1rem; margin: 0.4rem 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
tr.same td { color: var(--grey); background: var(--grey-bg); }
tr.only-legacy td, tr.diverged td, tr.faulting td { background: var(--red-bg); color: var(--red); }
tr.only-generic td { background: var(--green-bg); color: var(--green); }
.fail { color: var(--red); font-weight: 600; }
.allowed { color: var(--grey); }
.side-by-side { display: flex; flex-wrap: wrap; gap: 1rem; }
.side-by-side > div { flex: 1 1 28rem; min-width: 0; }
.kernel-log > div { flex-basis: 100%; }
tr.diverged.allowlisted td { background: #fff4d6; color: #6b4e00; }
.fault { color: var(--red); font-weight: 600; }
.legend span { display: inline-block; padding: 0 0.5rem; margin-right: 0.4rem; border: 1px solid #ccc; }
.legend .same { background: var(--grey-bg); color: var(--grey); }
.legend .only-legacy { background: var(--red-bg); color: var(--red); }
.legend .only-generic { background: var(--green-bg); color: var(--green); }
.legend .allowlisted { background: #fff4d6; color: #6b4e00; }
ul { margin: 0.2rem 0; padding-left: 1.4rem; }
`;

/** Escapes a document string for HTML text and attribute values. */
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

/** A table inside a horizontally scrolling wrapper; `rows` are already rendered <tr>s. */
function table(cls: string, head: string[], rows: string[]): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join('');
  return `<div class="wrap"><table class="${cls}"><thead><tr>${th}</tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table></div>`;
}

/** One <tr> of escaped cells, with an optional class. */
function tr(cells: string[], cls?: string): string {
  const c = cls ? ` class="${cls}"` : '';
  return `<tr${c}>${cells.map((x) => `<td>${esc(x)}</td>`).join('')}</tr>`;
}

/** A bullet list of escaped strings, or "none". */
function list(items: string[]): string {
  if (items.length === 0) return '<p class="allowed">none</p>';
  return `<ul>${items.map((i) => `<li class="mono">${esc(i)}</li>`).join('')}</ul>`;
}

/** "D1×3, D3×1" from an allowlist tally. */
function tally(a: Record<string, number>): string {
  return Object.entries(a).map(([id, n]) => `${id}×${n}`).join(', ');
}

/** The colour legend shared by the trace diff, step and reachable tables. */
function legend(): string {
  return '<p class="legend">Legend: <span class="same">same on both paths</span><span class="only-legacy">only legacy-intel / failing</span><span class="only-generic">only dma-iommu</span><span class="allowlisted">allowlisted divergence</span></p>';
}

/** The coverage table: one row per platform, corpus entry or reported scenario. */
function coverage(doc: ReportDoc): string {
  const td = (s: string): string => `<td>${esc(s)}</td>`;
  const rows = doc.coverage.map((r: CoverageRow) => {
    const links = r.failureIds.map((id) => ` <a href="#failure-${esc(id)}">${esc(id)}</a>`).join('');
    return `<tr${r.failures > 0 ? ' class="diverged"' : ''}>${[r.name, r.kind, String(r.runs), String(r.steps)].map(td).join('')}` +
      `<td>${r.failures}${links}</td>${[tally(r.allowlisted), r.unhit.join(', '), r.tokens.join(' ')].map(td).join('')}</tr>`;
  });
  const t = table('coverage-table', ['name', 'kind', 'runs', 'steps', 'failures', 'allowlisted', 'unhit', 'tokens'], rows);
  return `<section id="coverage"><h2>Coverage</h2>${t}</section>`;
}

/** The scenario's steps, both paths' results side by side. */
function steps(f: FailureReport, doc: ReportDoc): string {
  const rows = f.steps.map((s: StepRow) => {
    const divs = s.divergences.map((i) => `#${i} ${f.divergences[i]?.kind ?? '?'}`).join(', ');
    const allowed = s.divergences.length > 0 && s.divergences.every((i) => f.divergences[i]?.fails === false);
    return tr([String(s.index), s.call, s.legacy, s.generic, divs], allowed ? 'diverged allowlisted' : s.divergences.length > 0 ? 'diverged' : undefined);
  });
  const head = ['#', 'call', `legacy-intel (${doc.releases.legacy})`, `dma-iommu (${doc.releases.generic})`, 'divergences'];
  return `<h3>Steps</h3>${table('steps', head, rows)}`;
}

/** The divergence list: failing ones in red, allowlisted ones with their entry. */
function divergences(f: FailureReport): string {
  const items = f.divergences.map((d: DivergenceRow, i) => {
    const verdict = d.fails ? '<span class="fail">FAIL</span>' : `<span class="allowed">${d.allowlisted !== undefined ? `allowlisted ${esc(d.allowlisted)}` : 'not checked'}</span>`;
    const where = [d.map ? `map ${d.map}` : '', d.device ? `device ${d.device}` : ''].filter(Boolean).join(', ');
    return `<li id="div-${esc(f.id)}-${i}"><b>#${i} ${esc(d.kind)}</b> at step ${d.step} — ${verdict}${where ? ` (${esc(where)})` : ''}: <span class="mono">${esc(d.detail)}</span></li>`;
  });
  return `<h3>Divergences</h3><ol start="0" class="divergences">${items.join('')}</ol>`;
}

/** The trace diff, then both raw traces side by side. */
function trace(t: DivergenceFocus['trace']): string {
  const cls = { ' ': 'same', '-': 'only-legacy', '+': 'only-generic' } as const;
  const rows = t.diff.map((r: TraceDiffRow) =>
    tr([`${r.op} ${r.step}`, r.op === '+' ? '' : r.line, r.op === '-' ? '' : r.line], cls[r.op]));
  const raw = (name: string, lines: TraceLine[]): string =>
    `<div><h4>${esc(name)}</h4>${table('trace-lines', ['step', 'event', 'text'], lines.map((l) => tr([String(l.step), l.event, l.text])))}</div>`;
  return `<h4>Trace diff</h4>${table('trace-diff', ['step', 'legacy-intel', 'dma-iommu'], rows)}` +
    `<div class="side-by-side trace-raw">${raw('legacy-intel trace', t.legacy)}${raw('dma-iommu trace', t.generic)}</div>`;
}

/** One kernel log line, with its decoded DMAR fault beside it. */
function logLine(l: LogLine): string {
  const f = l.fault;
  const decoded = f
    ? `<td class="fault">reason ${reasonHex(f.reason)} ${esc(f.reasonText)} · ${esc(f.access)} · addr ${esc(f.addr)} · device ${esc(f.device)}</td>`
    : '<td></td>';
  return `<tr${f ? ' class="faulting"' : ''}><td>${l.step}</td><td>${esc(l.text)}</td>${decoded}</tr>`;
}

/** Both paths' kernel logs side by side. */
function logs(l: DivergenceFocus['log']): string {
  const one = (name: string, lines: LogLine[]): string => `<div><h4>${esc(name)} kernel log</h4>` +
    (lines.length ? table('log-lines', ['step', 'line', 'decoded fault'], lines.map(logLine)) : '<p class="allowed">empty</p>') + '</div>';
  return `<div class="side-by-side kernel-log">${one('legacy-intel', l.legacy)}${one('dma-iommu', l.generic)}</div>`;
}

/** One hardware walk: the PTE table, its result and the caches still holding it. */
function walk(w: Walk): string {
  const rows = w.entries.map((e) => tr([String(e.level), e.addr, e.value, e.bits.join(' ')], 'entry'));
  return `<div class="walk"><h4>${esc(w.path)}: ${esc(w.device)} [${esc(w.bdf)}] iova ${esc(w.iova)} (${esc(w.why)})</h4>` +
    table('pte-table', ['level', 'addr', 'value', 'bits'], rows) +
    `<p>Result: <code>${esc(w.result)}</code></p><h4>IOTLB</h4>${list(w.iotlb)}<h4>Context cache</h4>${list(w.contextCache)}</div>`;
}

/** The pages one path's device can reach and the other's cannot. */
function reachable(pages: ReachPage[]): string {
  const rows = pages.map((p) => tr([p.side, p.phys, p.perm, p.mapping], p.side === 'legacy only' ? 'only-legacy' : 'only-generic'));
  return `<h4>Reachable pages</h4>${table('reachable', ['side', 'phys', 'perm', 'mapping'], rows)}`;
}

/** Everything about one failing divergence, collapsible. */
function focus(f: FailureReport, x: DivergenceFocus): string {
  const d = f.divergences[x.divergence];
  const title = d ? `divergence #${x.divergence} ${d.kind} at step ${d.step}` : `divergence #${x.divergence}`;
  return `<details open class="focus"><summary><h3>${esc(title)}</h3> — steps ${esc(x.steps.join(', '))}</summary>` +
    trace(x.trace) + logs(x.log) + `<h4>Walks</h4><div class="side-by-side">${x.walks.map((w) => `<div>${walk(w)}</div>`).join('')}</div>` +
    reachable(x.reachable) + '</details>';
}

/** One failure: its identity, steps, divergences and focus sections. */
function failure(f: FailureReport, doc: ReportDoc): string {
  const dd = (k: string, v: string): string => `<dt>${esc(k)}</dt><dd>${v}</dd>`;
  const token = f.token ? `<code class="token">dmadiff replay ${esc(f.token)}</code>` : '—';
  const meta = dd('platform', esc(f.platform)) + dd('source', esc(f.source)) + dd('scenario id', `<code>${esc(f.id)}</code>`) +
    dd('replay', token) + dd('scenario file', f.scenarioFile ? `<code>${esc(f.scenarioFile)}</code>` : '—');
  return `<details open class="failure" id="failure-${esc(f.id)}"><summary><h2 class="failure-title">${esc(f.title)}</h2></summary>` +
    `<dl class="meta">${meta}</dl>${steps(f, doc)}${divergences(f)}${f.focus.map((x) => focus(f, x)).join('\n')}</details>`;
}

/** The whole report as one self-contained HTML5 document. */
export function renderHtml(doc: ReportDoc): string {
  const heading = `dmadiff report — ${doc.command}: ${doc.verdict}`;
  const failures = doc.failures.length
    ? doc.failures.map((f) => failure(f, doc)).join('\n')
    : '<p>No failing divergence.</p>';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(heading)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${esc(heading)}</h1>
<p class="releases">${esc(releasesLine(doc))} · ${doc.failures.length} failure(s)</p>
${legend()}
${coverage(doc)}
<section id="failures"><h2>Failures</h2>
${failures}
</section>
</body>
</html>
`;
}
