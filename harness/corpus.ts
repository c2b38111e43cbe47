/**
 * The failure corpus: one file per failure, named by a hash of its scenario (so a failure found
 * twice is stored once), written atomically (a temporary file renamed into place, so a run killed
 * mid-write never leaves a torn entry and never loses an earlier one). Every run replays the
 * corpus first; an unreadable entry is reported and skipped, never deleted.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stableJson } from './json.js';
import { scenarioToJson, type Scenario } from './scenario.js';
import { parseScenario } from './validation.js';

export const CORPUS_FORMAT = 'dmadiff-corpus/1';

export interface CorpusEntry {
  format: typeof CORPUS_FORMAT;
  platform: string;
  token: string;
  divergences: Array<{ step: number; kind: string; detail: string }>;
  scenario: unknown;
}

export function scenarioHash(s: Scenario): string {
  return createHash('sha256').update(stableJson(scenarioToJson(s))).digest('hex').slice(0, 16);
}

/** A file or directory that could not be written: one line naming the path (the CLI's exit 2). */
export class WriteError extends Error {}

/** The short reason of a failed fs call: its code (ENOENT, EISDIR, ...) or its first line. */
function reason(e: unknown): string {
  if (e instanceof Error && 'code' in e && typeof e.code === 'string') return e.code;
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

/**
 * Write text to path atomically: a temporary file beside it, then rename. On failure the
 * temporary is removed (best effort) and a WriteError naming the path is thrown; the target is
 * left as it was.
 */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to remove, or it cannot be removed: the write error is what matters
    }
    throw new WriteError(`cannot write ${path}: ${reason(e)}`);
  }
}

/** Store a failure; returns the entry's path (an existing identical entry is kept). */
export function storeFailure(dir: string, platform: string, token: string, s: Scenario, ds: ReadonlyArray<{ step: number; kind: string; detail: string }>): string {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new WriteError(`cannot create directory ${dir}: ${reason(e)}`);
  }
  const path = join(dir, `${scenarioHash(s)}.json`);
  const entry: CorpusEntry = {
    format: CORPUS_FORMAT,
    platform,
    token,
    divergences: ds.map((d) => ({ step: d.step, kind: d.kind, detail: d.detail })),
    scenario: scenarioToJson(s),
  };
  writeAtomic(path, `${stableJson(entry)}\n`);
  return path;
}

/** Export a scenario file (dmadiff-scenario/1) atomically. */
export function exportScenario(path: string, s: Scenario): void {
  writeAtomic(path, `${stableJson(scenarioToJson(s))}\n`);
}

export interface LoadedEntry {
  file: string;
  entry?: CorpusEntry;
  scenario?: Scenario;
  error?: string;
}

/** Every entry of the corpus, in name order; unreadable ones carry their error. */
export function loadCorpus(dir: string): LoadedEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.endsWith('.scenario.json')).sort();
  } catch {
    return [];
  }
  return names.map((n) => {
    const file = join(dir, n);
    try {
      const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<CorpusEntry>;
      if (v.format !== CORPUS_FORMAT) return { file, error: `format: expected "${CORPUS_FORMAT}"` };
      const scenario = parseScenario(v.scenario);
      return { file, entry: v as CorpusEntry, scenario };
    } catch (e) {
      return { file, error: e instanceof Error ? e.message.split('\n')[0]! : String(e) };
    }
  });
}
