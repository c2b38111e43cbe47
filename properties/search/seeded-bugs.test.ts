/**
 * The search can fail: each seeded bug (in either model) is found from random generation on a
 * platform where it matters, shrunk to a handful of steps, and replayable from its token; without
 * the bug the same command passes, and the exported scenario alone (run with no bug switched on)
 * shows no failing divergence -- the failure is the bug's.
 *
 * Each case names the divergence kinds the bug can show as. The bounce-buffer bugs show as the
 * CPU or device views (harness/check/views.ts), the trace bugs as trace accounting (trace-account.ts),
 * the allocator bugs on the exhaustion platform as 6.1 failing an allocation that had room
 * (exhaustion.ts). Seeds are fixed (found by surveying seeds 1..6 at 100 runs each; figures for
 * the whole default gate on three seeds are in the closing note and `npm run bench`).
 */
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { SeededBugs } from '../../harness/run/paths.js';
import { decodeToken, SEEDED_BUGS } from '../../harness/search/token.js';
import { TmpDirs, cli, parseTable, printedFailures, readScenarioFile, searchArgs, stepList } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

interface Case {
  bug: keyof SeededBugs;
  platform: string;
  seed: number;
  /** divergence kinds the bug shows as */
  kinds: string[];
  /** the budget (RUNS unless given) and the largest shrunk size accepted (MAX_SHRUNK_STEPS) */
  runs?: number;
  maxShrunk?: number;
}

const CASES: readonly Case[] = [
  { bug: 'noIotlbSync', platform: 'qemu-strict', seed: 1, kinds: ['reachable', 'device-read', 'device-write', 'exposure', 'device-view'] },
  { bug: 'noIotlbSyncMap', platform: 'caching-mode', seed: 1, kinds: ['reachable', 'device-read', 'device-write', 'consumer', 'device-view'] },
  { bug: 'noBouncePaddingZero', platform: 'qemu-strict', seed: 1, kinds: ['device-read', 'exposure', 'consumer', 'device-view'] },
  { bug: 'mergeIgnoresMaxSeg', platform: 'qemu-strict', seed: 1, kinds: ['sg-limits'] },
  { bug: 'lazyUntrusted', platform: 'lazy-2cpu', seed: 1, kinds: ['reachable', 'device-read', 'device-write', 'exposure'] },
  { bug: 'syncSgWholeList', platform: 'qemu-strict', seed: 1, kinds: ['cpu-view', 'device-view'] },
  { bug: 'unmapCopyBackFromDeviceOnly', platform: 'qemu-strict', seed: 1, kinds: ['cpu-view'] },
  { bug: 'unmapCopyBackAligned', platform: 'qemu-strict', seed: 1, kinds: ['cpu-view'] },
  { bug: 'legacySyncSgForCpuToDevice', platform: 'qemu-strict', seed: 1, kinds: ['cpu-view', 'device-view'] },
  { bug: 'noMapTraceAtomic', platform: 'qemu-strict', seed: 1, kinds: ['trace'] },
  { bug: 'bounceTracesOriginal', platform: 'qemu-strict', seed: 1, kinds: ['trace'] },
  { bug: 'syncForDeviceWholeSlot', platform: 'qemu-strict', seed: 1, kinds: ['device-view'] },
  { bug: 'retryFromCachedNode', platform: 'exhaust-1cpu', seed: 4, kinds: ['exhaustion', 'outcome', 'trace', 'reachable'], runs: 50 },
  { bug: 'roundAllToPowerOfTwo', platform: 'exhaust-1cpu', seed: 3, kinds: ['exhaustion', 'outcome', 'trace', 'reachable'], runs: 50 },
  // the depot needs 255 one-page frees on one CPU before it holds anything: the shrunk scenario
  // keeps the 260-map fill, its unmaps and the request that needs the depot's pages back
  { bug: 'noDepotFlushOnFailure', platform: 'exhaust-1cpu', seed: 2, kinds: ['exhaustion', 'outcome', 'trace', 'reachable'], runs: 50, maxShrunk: 600 },
];

const RUNS = 100;
const MAX_SHRUNK_STEPS = 6;

/** The same search without the bug, run once per platform, seed and budget (most cases share one). */
const fineRuns = new Map<string, ReturnType<typeof cli>>();
function unbroken(c: Case): ReturnType<typeof cli> {
  const key = `${c.platform}:${c.seed}:${c.runs ?? RUNS}`;
  let r = fineRuns.get(key);
  if (r === undefined) {
    r = cli(['gate', ...searchArgs({ runs: c.runs ?? RUNS, seed: c.seed, platforms: c.platform, consumers: 'correct', corpus: tmp.fresh('bug') })]);
    fineRuns.set(key, r);
  }
  return r;
}

describe('seeded bugs are found from random generation and shrunk (gate --consumers correct --runs 100)', () => {
  it('every seeded bug the CLI knows has a case here', () => {
    expect(CASES.map((c) => c.bug).sort()).toEqual([...SEEDED_BUGS].sort());
  });

  it.each(CASES)('$bug on $platform (seed $seed): exit 1, shrunk; exit 0 without --broken', async (c) => {
    const args = (): string[] => searchArgs({ runs: c.runs ?? RUNS, seed: c.seed, platforms: c.platform, consumers: 'correct', corpus: tmp.fresh('bug') });
    const broken = await cli(['gate', '--broken', c.bug, ...args()]);
    expect(broken.code, broken.out.join('\n')).toBe(1);
    expect(broken.err).toEqual([]);
    expect(broken.out.some((l) => l.startsWith('verdict: FAIL'))).toBe(true);
    const fs = printedFailures(broken.out);
    expect(fs).toHaveLength(1);
    const f = fs[0]!;
    expect(f.platform).toBe(c.platform);
    const s = readScenarioFile(f.scenario);
    const why = `${c.bug}: ${stepList(s)}\n${broken.out.join('\n')}`;
    expect(s.steps.length, why).toBe(f.steps);
    expect(s.steps.length, why).toBeGreaterThanOrEqual(1);
    expect(s.steps.length, why).toBeLessThanOrEqual(c.maxShrunk ?? MAX_SHRUNK_STEPS);
    // the printed divergences are of a kind the bug can cause
    const printedKinds = broken.out.flatMap((l) => /^ {2}step \d+: DIVERGENCE \[([a-z-]+)\]/.exec(l)?.[1] ?? []);
    expect(printedKinds.length, why).toBeGreaterThan(0);
    for (const k of printedKinds) expect(c.kinds, why).toContain(k);
    // the token carries the seeded bug, and replays the failure
    const t = decodeToken(f.token);
    expect(t.token.faults).toEqual([c.bug]);
    expect(t.token.platform).toBe(c.platform);
    expect(t.token.consumers).toEqual(['correct']);
    const replayed = await cli(['replay', f.token]);
    expect(replayed.code, replayed.out.join('\n')).toBe(1);
    expect(replayed.out[0]).toBe(`reproduced on ${c.platform}: ${s.steps.length} step(s)`);
    // the exported scenario names the bug and reproduces the failure with it; the same steps
    // without it are equivalent: the failure is the bug's
    expect((s as unknown as { seededBugs?: unknown }).seededBugs, why).toEqual([c.bug]);
    const withBug = await cli(['scenario', f.scenario]);
    expect(withBug.code, `${why}\n${withBug.out.join('\n')}`).toBe(1);
    const { seededBugs: _b, ...bare } = s as unknown as Record<string, unknown>;
    const bareFile = `${f.scenario}.bare.json`;
    writeFileSync(bareFile, JSON.stringify(bare));
    const plain = await cli(['scenario', bareFile]);
    expect(plain.code, `${why}\n${plain.out.join('\n')}`).toBe(0);

    const fine = await unbroken(c);
    expect(fine.code, fine.out.join('\n')).toBe(0);
    expect(fine.out.some((l) => l.startsWith('verdict: PASS'))).toBe(true);
    expect(parseTable(fine.out)[0]!.runs).toBe(c.runs ?? RUNS);
  }, 60_000);
});

/**
 * Comparison cannot see an allocator bug that makes 6.1 fail where 5.10 fails; coverage can: the
 * branch the bug removes stays at 0 and the gate, without --allow-unhit, is INCONCLUSIVE (exit 4)
 * naming it, where the same budget without the bug reaches it. Seeds where the search meets the
 * bug's state without a failing request (so only coverage can tell), at 50 runs.
 */
describe('allocator bugs the comparison cannot see are INCONCLUSIVE by coverage', () => {
  it.each([
    ['retryFromCachedNode', 3, 'iova-retry'],
    ['roundAllToPowerOfTwo', 5, 'rounded-tail'],
    ['noDepotFlushOnFailure', 3, 'depot-flush'],
  ] as const)('%s (exhaust-1cpu, seed %i): exit 4 naming %s; reached without the bug', async (bug, seed, branch) => {
    const flags = ['--runs', '50', '--seed', String(seed), '--platforms', 'exhaust-1cpu', '--consumers', 'correct'];
    const broken = await cli(['gate', '--broken', bug, ...flags, '--corpus', tmp.fresh('bug')]);
    expect(broken.code, broken.out.join('\n')).toBe(4);
    const v = broken.out.findIndex((l) => l.startsWith('verdict: INCONCLUSIVE'));
    expect(broken.out[v + 1]).toContain(branch);
    expect(parseTable(broken.out)[0]!.coverage.get(branch)).toBe(0);
    const fine = await cli(['gate', ...flags, '--allow-unhit', '--corpus', tmp.fresh('bug')]);
    expect(fine.code).toBe(0);
    expect(parseTable(fine.out)[0]!.coverage.get(branch)).toBeGreaterThan(0);
  });
});
