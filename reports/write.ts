/**
 * `--report DIR`: the report in every format, each file written atomically (a reader never sees
 * half a file): report.txt, report.json (dmadiff-report/1), junit.xml, summary.md, report.html.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WriteError, writeAtomic } from '../harness/search/corpus.js';
import { stableJson } from '../harness/cli/json.js';
import { MODELLED_KERNELS } from '../kernel/release.js';
import { renderHtml } from './html.js';
import { renderJunit } from './junit.js';
import { renderMarkdown } from './markdown.js';
import { renderReportText } from './text.js';
import { REPORT_FORMAT, type CoverageRow, type FailureReport, type ReportDoc } from './types.js';

const REPORT_FILES = ['report.txt', 'report.json', 'junit.xml', 'summary.md', 'report.html'] as const;

export function reportDoc(command: string, verdict: string, coverage: CoverageRow[], failures: FailureReport[]): ReportDoc {
  return { format: REPORT_FORMAT, command, verdict, releases: { legacy: MODELLED_KERNELS.legacy, generic: MODELLED_KERNELS.generic }, coverage, failures };
}

/** Write every format into dir (made if missing); returns the paths written. */
export function writeReports(dir: string, doc: ReportDoc): string[] {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new WriteError(`--report: cannot make ${dir}: ${(e as Error).message}`);
  }
  const texts: Record<(typeof REPORT_FILES)[number], string> = {
    'report.txt': renderReportText(doc, false),
    'report.json': `${stableJson(doc)}\n`,
    'junit.xml': renderJunit(doc),
    'summary.md': renderMarkdown(doc),
    'report.html': renderHtml(doc),
  };
  return REPORT_FILES.map((name) => {
    const path = join(dir, name);
    writeAtomic(path, texts[name]);
    return path;
  });
}

/**
 * writeReports for a command whose verdict stands whether or not its report could be written
 * (gate, nightly, merge, replay, scenario): where it went, or why not, one line each.
 */
export function writeReportsBeside(dir: string, doc: ReportDoc, io: { out(line: string): void; err(line: string): void }): void {
  try {
    writeReports(dir, doc);
    io.out(`report: ${dir} (${REPORT_FILES.join(', ')})`);
  } catch (e) {
    if (!(e instanceof WriteError)) throw e;
    io.err(`dmadiff: no report written: ${e.message}`);
  }
}
