/**
 * Shared helpers for the harness suites (scenario runner, equivalence checker, allowlist, CLI).
 *
 * The CLI is driven in-process through `main(argv, out, err)` with captured output; scenarios
 * go to files in one temporary folder per test file. Nothing here computes what the code under
 * test should answer: the only "expected value" helpers are the self-describing memory pattern
 * of DESIGN.md (each little-endian 64-bit word at physical address p holds 0xA5 << 56 | p until
 * written) and check.py's comparison rule, both written out here independently.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../harness/cli.js';
import type { ResultDoc } from '../../harness/runner.js';

// ---------------------------------------------------------------- fixtures

export interface OracleExpect {
  step: number;
  [field: string]: unknown;
}

export interface OracleCase {
  name: string;
  source: string;
  scenario: Record<string, unknown>;
  expect: Record<string, OracleExpect[]>;
  trace?: {
    coversSteps: [number, number];
    events: Record<string, Array<{ event: string; text: string }>>;
  };
}

export const FIXTURE_NAMES = ['strict-main', 'strict-dmacheck'] as const;

/** A recorded case, read relative to this file (never from ../shared). */
export function loadFixture(name: (typeof FIXTURE_NAMES)[number]): OracleCase {
  return JSON.parse(readFileSync(new URL(`../fixtures/oracle/${name}.json`, import.meta.url), 'utf8')) as OracleCase;
}

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

export interface DeviceJson {
  id: string;
  bdf: string;
  pci?: boolean;
  untrusted?: boolean;
  dmaMask: number;
  coherentMask?: number;
  maxSegSize?: number;
  segBoundaryMask?: string;
}

export type StepJson = Record<string, unknown>;

/** The recordings' device (edu, a conventional PCI function at 00:02.0), here with a 64-bit mask. */
export const DEV: DeviceJson = { id: 'dev', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 64 };

/** The name the kernel gives that device (dev_name of a PCI function in segment 0). */
export const DEV_NAME = '0000:00:02.0';

/** A dmadiff-scenario/1 document on the recordings' platform (aw 39, strict, no CM) unless overridden. */
export function scenarioJson(o: { platform?: Record<string, unknown>; devices?: DeviceJson[]; steps: StepJson[] }): Record<string, unknown> {
  return {
    format: 'dmadiff-scenario/1',
    platform: { agaw: 39, cachingMode: false, zlr: false, superpages: ['2M', '1G'], strict: true, forcedac: false, cpus: 1, ...o.platform },
    devices: o.devices ?? [DEV],
    reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
    steps: o.steps,
  };
}

// ---------------------------------------------------------------- expected values

/** The untouched self-describing bytes of [addr, addr + len) as lower-case hex (DESIGN.md). */
export function patternHex(addr: number, len: number): string {
  let out = '';
  for (let i = 0; i < len; i++) {
    const a = addr + i;
    const word = (0xa5n << 56n) | BigInt(a - (a % 8));
    out += Number((word >> BigInt(8 * (a % 8))) & 0xffn)
      .toString(16)
      .padStart(2, '0');
  }
  return out;
}

/** len zero bytes as hex */
export function zeroHex(len: number): string {
  return '00'.repeat(len);
}

/** check.py's norm: "0x..." strings become numbers (here bigints, so 64-bit values stay exact). */
export function norm(v: unknown): unknown {
  if (typeof v === 'string' && v.toLowerCase().startsWith('0x')) {
    try {
      return BigInt(v);
    } catch {
      return v;
    }
  }
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(norm);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

/** check.py's sub: expected is a subset of actual (objects by key; lists of equal length, elementwise). */
export function sub(expected: unknown, actual: unknown): boolean {
  const e = norm(expected);
  const a = norm(actual);
  if (typeof e === 'object' && e !== null && !Array.isArray(e)) {
    if (typeof a !== 'object' || a === null || Array.isArray(a)) return false;
    const ao = a as Record<string, unknown>;
    return Object.entries(e).every(([k, x]) => k in ao && sub(x, ao[k]));
  }
  if (Array.isArray(e)) return Array.isArray(a) && e.length === a.length && e.every((x, i) => sub(x, a[i]));
  return e === a;
}
