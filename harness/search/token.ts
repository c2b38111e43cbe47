/**
 * Replay tokens: one string that carries everything needed to regenerate a failing run --
 * fast-check's seed and shrink path, the platform, the consumers, the step budget and any
 * seeded bug switched on. `dmadiff replay TOKEN` turns it back into the same failure.
 */
import { SEEDED_BUGS, bugList, bugSwitches, type SeededBug } from '../run/paths.js';
import { PLATFORM_MATRIX, type SearchConfig } from './property.js';
import { CONSUMERS, type Consumer } from '../workload/scenario.js';

const PREFIX = 'dmadiff1.';

export class TokenError extends Error {}

export interface ReplayToken {
  seed: number;
  path: string;
  platform: string;
  consumers: Consumer[];
  maxSteps: number;
  /** --no-trace: trace divergences did not fail the run */
  noTrace: boolean;
  faults: SeededBug[];
}

export function encodeToken(cfg: SearchConfig, seed: number, path: string): string {
  const t: ReplayToken = {
    seed,
    path,
    platform: cfg.platform.name,
    consumers: cfg.consumers,
    maxSteps: cfg.maxSteps,
    noTrace: !cfg.checkTrace,
    faults: bugList(cfg.faults),
  };
  return PREFIX + Buffer.from(JSON.stringify(t)).toString('base64url');
}

function bad(why: string): never {
  throw new TokenError(`replay token: ${why}`);
}

export function decodeToken(token: string): { token: ReplayToken; cfg: SearchConfig } {
  if (!token.startsWith(PREFIX)) bad(`expected a string starting with "${PREFIX}"`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    bad('not a dmadiff token (the payload does not decode)');
  }
  if (typeof v !== 'object' || v === null) bad('payload is not an object');
  const o = v as Record<string, unknown>;
  if (typeof o['seed'] !== 'number' || !Number.isInteger(o['seed'])) bad('seed: expected an integer');
  if (typeof o['path'] !== 'string' || !/^[0-9:]*$/.test(o['path'])) bad('path: expected a fast-check path like "12:3:0"');
  const platform = PLATFORM_MATRIX.find((p) => p.name === o['platform']);
  if (platform === undefined) bad(`platform: unknown platform ${JSON.stringify(o['platform'])}`);
  const consumers = o['consumers'];
  if (!Array.isArray(consumers) || consumers.length === 0 || !consumers.every((c) => CONSUMERS.includes(c as Consumer))) bad(`consumers: expected a list of ${CONSUMERS.join(', ')}`);
  if (typeof o['maxSteps'] !== 'number' || !Number.isInteger(o['maxSteps']) || o['maxSteps'] < 1) bad('maxSteps: expected a positive integer');
  const faults = o['faults'];
  if (!Array.isArray(faults) || !faults.every((f) => SEEDED_BUGS.includes(f as SeededBug))) bad('faults: unknown seeded bug');
  const t: ReplayToken = {
    seed: o['seed'],
    path: o['path'],
    platform: platform.name,
    consumers: consumers as Consumer[],
    maxSteps: o['maxSteps'],
    noTrace: o['noTrace'] === true,
    faults: faults as SeededBug[],
  };
  return { token: t, cfg: { platform, consumers: t.consumers, maxSteps: t.maxSteps, checkTrace: !t.noTrace, faults: bugSwitches(t.faults) } };
}

export { SEEDED_BUGS };
