/**
 * JUnit XML for CI: one test case per platform searched and per corpus entry replayed (the
 * Ant/Jenkins JUnit schema: testsuites > testsuite > testcase, at most one failure a case), the
 * failure's text naming every divergence that fails the gate, each with its replay token.
 */
import type { CoverageRow, FailureReport, ReportDoc } from './types.js';

/** XML 1.0 text: the five escapes, and characters XML cannot hold at all dropped. */
function xmlEscape(s: string): string {
  return s
    .replace(/[^\t\n\r\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function attrs(a: Record<string, string | number>): string {
  return Object.entries(a)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');
}

/** The failures a coverage row stands for. */
function failuresOf(doc: ReportDoc, row: CoverageRow): FailureReport[] {
  return doc.failures.filter((f) => row.failureIds.includes(f.id));
}

function failureText(fs: readonly FailureReport[]): string {
  const lines: string[] = [];
  for (const f of fs) {
    lines.push(f.title);
    for (const d of f.divergences) if (d.fails) lines.push(`  step ${d.step} [${d.kind}] ${d.detail}`);
    if (f.token !== undefined) lines.push(`  replay: dmadiff replay ${f.token}`);
    if (f.scenarioFile !== undefined) lines.push(`  scenario: ${f.scenarioFile}`);
  }
  return lines.join('\n');
}

function testcase(doc: ReportDoc, row: CoverageRow): string {
  const classname = `dmadiff.${row.kind}`;
  const head = `    <testcase${attrs({ classname, name: row.name, time: 0 })}`;
  // an entry that could not be read was not replayed: an error (the verdict counts it), or
  // skipped under --ignore-corrupt -- never a pass
  const u = row.unreadable;
  if (u !== undefined && u.failsVerdict) return `${head}>\n      <error${attrs({ message: `unreadable corpus entry: ${u.why}`, type: 'unreadable' })}>${xmlEscape(`${row.name} could not be read (kept in the corpus): ${u.why}`)}</error>\n    </testcase>`;
  if (u !== undefined) return `${head}>\n      <skipped${attrs({ message: `unreadable corpus entry, ignored (--ignore-corrupt): ${u.why}` })}/>\n    </testcase>`;
  if (row.failures === 0) return `${head}>\n      <system-out>${xmlEscape(`${row.runs} runs, ${row.steps} steps`)}</system-out>\n    </testcase>`;
  const fs = failuresOf(doc, row);
  const first = fs[0];
  const message = first?.title ?? `${row.failures} divergence(s) outside the allowlist`;
  const kind = first?.divergences.find((d) => d.fails)?.kind ?? 'divergence';
  const tokens = row.tokens.map((t) => `dmadiff replay ${t}`).join('\n');
  return `${head}>\n      <failure${attrs({ message, type: kind })}>${xmlEscape(fs.length > 0 ? failureText(fs) : tokens)}</failure>\n    </testcase>`;
}

/** Rows that fail, that could not be read (errors), and unreadable ones ignored (skipped). */
function counts(rows: readonly CoverageRow[]): { failures: number; errors: number; skipped: number } {
  return {
    failures: rows.filter((r) => r.unreadable === undefined && r.failures > 0).length,
    errors: rows.filter((r) => r.unreadable?.failsVerdict === true).length,
    skipped: rows.filter((r) => r.unreadable?.failsVerdict === false).length,
  };
}

/** The report as one JUnit XML document. */
export function renderJunit(doc: ReportDoc): string {
  const suites: string[] = [];
  for (const kind of ['platform', 'corpus', 'scenario'] as const) {
    const rows = doc.coverage.filter((r) => r.kind === kind);
    if (rows.length === 0) continue;
    const n = counts(rows);
    suites.push(
      `  <testsuite${attrs({ name: `dmadiff ${doc.command} ${kind === 'platform' ? 'platforms' : kind}`, tests: rows.length, failures: n.failures, errors: n.errors, skipped: n.skipped, time: 0 })}>\n${rows.map((r) => testcase(doc, r)).join('\n')}\n  </testsuite>`,
    );
  }
  const n = counts(doc.coverage);
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites${attrs({ name: `dmadiff ${doc.command}: ${doc.verdict}`, tests: doc.coverage.length, failures: n.failures, errors: n.errors, time: 0 })}>\n${suites.join('\n')}\n</testsuites>\n`;
}
