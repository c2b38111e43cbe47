/**
 * The failure corpus: one file per failure, named by a hash of its scenario (so a failure found
 * twice is stored once), written atomically (a temporary file renamed into place, so a run killed
 * mid-write never leaves a torn entry and never loses an earlier one). Every run replays the
 * corpus first; an unreadable entry is reported and skipped, never deleted.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stableJson } from '../cli/json.js';
import { SEEDED_BUGS, type SeededBug } from '../run/paths.js';
import { CONSUMERS, scenarioToJson, type Consumer, type Scenario } from '../workload/scenario.js';
import { decodeToken } from './token.js';
import { parseScenario } from '../workload/validation.js';

/**
 * dmadiff-corpus/2: what an entry needs to apply is recorded beside it (as Hypothesis' example
 * database keys entries by the test they belong to), so a gate replays only the entries its
 * flags can reproduce. /1 entries (no `needs`) are still read: their needs are derived.
 */
export const CORPUS_FORMAT = 'dmadiff-corpus/2';
const CORPUS_V1 = 'dmadiff-corpus/1';

/** What a failure needs from the flags of a run that replays it. */
export interface EntryNeeds {
  /** the matrix platform it was found on (`--platforms`) */
  platform: string;
  /** the consumers its steps walk with (`--consumers`) */
  consumers: Consumer[];
  /** the seeded bugs it runs with (`--broken`) */
  seededBugs: SeededBug[];
  /** its divergences are all trace-accounting ones, so only a run that checks them sees it (`--no-trace`) */
  trace: boolean;
}

export interface CorpusEntry {
  format: typeof CORPUS_FORMAT;
  needs: EntryNeeds;
  platform: string;
  token: string;
  divergences: Array<{ step: number; kind: string; detail: string }>;
  scenario: unknown;
}

/** The needs of a failure: the consumers its steps name, its seeded bugs, whether only trace divergences show it. */
export function needsOf(platform: string, s: Scenario, ds: ReadonlyArray<{ kind: string }>): EntryNeeds {
  const consumers = CONSUMERS.filter((c) => s.steps.some((st) => st.op === 'consumer_walk' && st.consumer === c));
  return { platform, consumers, seededBugs: [...(s.seededBugs ?? [])], trace: ds.length > 0 && ds.every((d) => d.kind === 'trace') };
}

export function scenarioHash(s: Scenario): string {
  return createHash('sha256').update(stableJson(scenarioToJson(s))).digest('hex').slice(0, 16);
}

/** A file or directory that could not be written: one line naming the path (the CLI's exit 2). */
export class WriteError extends Error {}

/** The short reason of a failed fs call: its code (ENOENT, EISDIR, ...) or its first line. */
function reason(e: unknown): string {
  if (e instanceof Error && 'code' in e && typeof e.code === 'string') return e.code;
  return e instanceof Error ? e.message.split('\n')[0] : String(e);
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
    needs: needsOf(platform, s, ds),
    platform,
    token,
    divergences: ds.map((d) => ({ step: d.step, kind: d.kind, detail: d.detail })),
    scenario: scenarioToJson(s),
  };
  writeAtomic(path, `${stableJson(entry)}\n`);
  return path;
}

/** The scenario file exported beside a corpus entry (the entry's HASH.json -> HASH.scenario.json). */
export function scenarioFileOf(entry: string): string {
  return entry.replace(/\.json$/, '.scenario.json');
}

/** Export a scenario file (dmadiff-scenario/1) atomically. */
export function exportScenario(path: string, s: Scenario): void {
  writeAtomic(path, `${stableJson(scenarioToJson(s))}\n`);
}

export interface LoadedEntry {
  file: string;
  entry?: CorpusEntry;
  scenario?: Scenario;
  /** unreadable: the first problem, naming the field */
  error?: string;
  /** written by a newer dmadiff (a corpus format this one does not know): kept, not replayed */
  newer?: string;
}

/** The names of a corpus directory's entries, in name order (exported scenario files are not entries). */
function entryNames(dir: string): string[] {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.json') && !n.endsWith('.scenario.json')).sort();
  } catch {
    return [];
  }
}

/** Read one entry; a /1 entry is upgraded (its seeded bugs come from its token). */
function readEntry(file: string): LoadedEntry {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { file, error: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { file, error: 'expected a JSON object' };
  const o = v as Record<string, unknown>;
  const format = o['format'];
  const version = typeof format === 'string' ? /^dmadiff-corpus\/(\d+)$/.exec(format) : null;
  if (version !== null && Number(version[1]) > 2) return { file, newer: format as string };
  if (format !== CORPUS_FORMAT && format !== CORPUS_V1) return { file, error: `format: expected "${CORPUS_FORMAT}", got ${JSON.stringify(format)}` };
  if (typeof o['platform'] !== 'string') return { file, error: 'platform: expected a platform name' };
  if (typeof o['token'] !== 'string') return { file, error: 'token: expected a replay token' };
  if (!Array.isArray(o['divergences'])) return { file, error: 'divergences: expected an array' };
  let scenario: Scenario;
  try {
    scenario = parseScenario(o['scenario']);
  } catch (e) {
    return { file, error: `scenario.${e instanceof Error ? e.message : String(e)}` };
  }
  const divergences = o['divergences'] as CorpusEntry['divergences'];
  if (format === CORPUS_V1) {
    // /1 scenarios did not carry their seeded bugs; the token did
    let bugs: SeededBug[] = [];
    try {
      bugs = decodeToken(o['token']).token.faults;
    } catch (e) {
      return { file, error: `token: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (bugs.length > 0) scenario.seededBugs = bugs;
  }
  const needs = format === CORPUS_V1 ? needsOf(o['platform'], scenario, divergences) : checkNeeds(o['needs']);
  if (typeof needs === 'string') return { file, error: needs };
  const entry: CorpusEntry = { format: CORPUS_FORMAT, needs, platform: o['platform'], token: o['token'], divergences, scenario: o['scenario'] };
  return { file, entry, scenario };
}

/** The `needs` block of a /2 entry, or the first problem with it. */
function checkNeeds(v: unknown): EntryNeeds | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'needs: expected an object';
  const o = v as Record<string, unknown>;
  if (typeof o['platform'] !== 'string') return 'needs.platform: expected a platform name';
  const list = <T extends string>(k: string, known: readonly T[]): T[] | string => {
    const l = o[k];
    if (!Array.isArray(l) || !l.every((x) => (known as readonly unknown[]).includes(x))) return `needs.${k}: expected a list of ${known.join(', ')}`;
    return l as T[];
  };
  const consumers = list('consumers', CONSUMERS);
  if (typeof consumers === 'string') return consumers;
  const seededBugs = list('seededBugs', SEEDED_BUGS);
  if (typeof seededBugs === 'string') return seededBugs;
  if (typeof o['trace'] !== 'boolean') return 'needs.trace: expected true or false';
  return { platform: o['platform'], consumers, seededBugs, trace: o['trace'] };
}

/** Every entry of the corpus, in name order; unreadable ones carry their error (and are kept). */
export function loadCorpus(dir: string): LoadedEntry[] {
  return entryNames(dir).map((n) => readEntry(join(dir, n)));
}

/** Remove an entry and the scenario file exported beside it (`--prune`). */
export function removeEntry(file: string): void {
  for (const f of [file, scenarioFileOf(file)]) {
    try {
      unlinkSync(f);
    } catch (e) {
      if (!(e instanceof Error && 'code' in e && e.code === 'ENOENT')) throw new WriteError(`cannot remove ${f}: ${reason(e)}`);
    }
  }
}
