/**
 * Helpers for the harness suites (scenario runner, equivalence checker, allowlist, CLI).
 *
 * The CLI is driven in-process through `main(argv, out, err)` with captured output; scenarios
 * go to files in one temporary folder per test file. Nothing here computes what the code under
 * test should answer: the only "expected value" helpers are the self-describing memory pattern
 * of DESIGN.md and check.py's comparison rule, both shared with the path suites from ../support/
 * and written out there independently of the code under test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../harness/cli.js';
import type { Divergence } from '../../harness/check/checker.js';
import type { SeededBugs } from '../../harness/run/paths.js';
import { runScenario, type ResultDoc } from '../../harness/run/runner.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { fillHex } from '../support/pattern.js';
import { IOAPIC_RESERVED, scenarioJson as baseScenarioJson, type DeviceJson, type StepJson } from '../support/scenario.js';

export { FIXTURE_NAMES, loadFixture, sub, type OracleCase, type OracleExpect } from '../support/oracle.js';
export { patternHex } from '../support/pattern.js';
export { EDU as DEV, type DeviceJson, type StepJson } from '../support/scenario.js';

// ---------------------------------------------------------------- temp files and the CLI

/** A temporary folder for scenario files; `dispose` removes it. */
export class TmpFiles {
  readonly dir = mkdtempSync(join(tmpdir(), 'dmadiff-harness-'));
  private n = 0;

  /** Write a scenario (a JSON value, or raw text as is) and return the file's path. */
  write(v: unknown): string {
    const file = join(this.dir, `scenario-${this.n++}.json`);
    writeFileSync(file, typeof v === 'string' ? v : JSON.stringify(v, null, 2));
    return file;
  }

  /** A path in the folder that does not exist. */
  missing(): string {
    return join(this.dir, `missing-${this.n++}.json`);
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface CliRun {
  code: number;
  out: string[];
  err: string[];
}

/** Run the CLI in-process with captured stdout/stderr lines (a multi-line write counts its lines). */
export async function cli(argv: readonly string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, (s) => out.push(...s.split('\n')), (s) => err.push(...s.split('\n')));
  return { code, out, err };
}

/** `dmadiff scenario FILE --json [...]`, with the printed dmadiff-result/1 document parsed. */
export async function cliJson(file: string, ...flags: string[]): Promise<{ code: number; doc: ResultDoc; text: string; err: string[] }> {
  const r = await cli(['scenario', file, '--json', ...flags]);
  const text = r.out.join('\n');
  const doc = JSON.parse(text) as ResultDoc;
  return { code: r.code, doc, text, err: r.err };
}

// ---------------------------------------------------------------- scenarios

/** The name the kernel gives the recordings' device (dev_name of a PCI function in segment 0). */
export const DEV_NAME = '0000:00:02.0';

/**
 * A dmadiff-scenario/1 document on the recordings' platform (aw 39, strict, no CM) unless
 * overridden, always with (a fresh copy of) the IOAPIC window reserved; `platform` stays an open
 * record here, as the harness suites have always passed it.
 */
export function scenarioJson(o: { platform?: Record<string, unknown>; devices?: DeviceJson[]; steps: StepJson[] }): Record<string, unknown> {
  return baseScenarioJson({ ...o, reserved: [{ ...IOAPIC_RESERVED }] });
}

/** len zero bytes as hex */
export function zeroHex(len: number): string {
  return fillHex(0, len);
}

/** Run a scenario document on both paths, with the seeded bugs given switched on. */
export function runJson(json: Record<string, unknown>, faults: SeededBugs = {}): ResultDoc {
  return runScenario(parseScenario(json), { faults });
}

/** The divergences no allowlist entry recognises (trace accounting aside). */
export function unallowlisted(doc: ResultDoc): Divergence[] {
  return doc.divergences.filter((d) => d.allowlisted === undefined && d.kind !== 'trace');
}
