/**
 * Keeping the checker's observations incrementally (issue 18) must not change what the gate finds:
 * for every seeded bug, the same seed gives the same first failing chunk, the same replay token,
 * the same shrunk scenario (by hash) and the same divergence kinds as the code before the change
 * (properties/fixtures/seeded-bug-lock.json says which commit recorded them).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { scenarioHash } from '../../harness/search/corpus.js';
import { PLATFORM_MATRIX, chunkSeed, runChunk, type SearchConfig } from '../../harness/search/property.js';
import { encodeToken } from '../../harness/search/token.js';

interface Locked {
  name: string;
  platform: string;
  chunk: number;
  token: string;
  hash: string;
  steps: number;
  kinds: string[];
}

const LOCK = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'seeded-bug-lock.json'), 'utf8')) as { failures: Locked[] };

describe('the same seeds find the same failures as before the incremental checker', () => {
  it('the lock covers every seeded bug but the slow depot one', () => {
    expect(LOCK.failures.length).toBe(14);
  });

  it.each(LOCK.failures)('$name on $platform: chunk $chunk, same token, same shrunk scenario', (f) => {
    const cfg: SearchConfig = { platform: PLATFORM_MATRIX.find((p) => p.name === f.platform)!, consumers: ['correct'], maxSteps: 30, checkTrace: true, faults: { [f.name]: true } };
    for (let j = 0; j < f.chunk; j++) expect(runChunk(cfg, chunkSeed(1, j), 25).failure, `chunk ${j}`).toBeUndefined();
    const r = runChunk(cfg, chunkSeed(1, f.chunk), 25);
    expect(r.failure).toBeDefined();
    expect(encodeToken(cfg, r.failure!.seed, r.failure!.path)).toBe(f.token);
    expect(scenarioHash(r.failure!.scenario)).toBe(f.hash);
    expect(r.failure!.scenario.steps.length).toBe(f.steps);
    expect([...new Set(r.failure!.divergences.map((d) => d.kind))].sort()).toEqual(f.kinds);
  }, 120_000);
});
