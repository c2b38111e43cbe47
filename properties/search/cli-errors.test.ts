/**
 * Usage errors of the search commands: every bad flag, token or file is exit code 2 and exactly
 * one line on stderr starting "dmadiff: " (never an internal error, exit 3); `--help` of every
 * command is exit 0 with its usage on stdout.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COVERAGE_COLUMNS, LIFECYCLE_ROWS, TmpDirs, cli, printedFailures, searchArgs } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

const dir = tmp.fresh('cli');
const corpus = join(dir, 'corpus');

/** a token in the dmadiff1 format with the given payload */
function craftToken(payload: unknown): string {
  return `dmadiff1.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
}

const GOOD_PAYLOAD = { seed: 1, path: '0', platform: 'qemu-strict', consumers: ['correct'], maxSteps: 30, traceParity: false, faults: [] };

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const g = (...flags: string[]): string[] => ['gate', '--corpus', corpus, ...flags];
const n = (...flags: string[]): string[] => ['nightly', '--corpus', corpus, '--out', join(dir, 'never.json'), ...flags];

/** [what, argv, text the error line must contain] */
const USAGE_ERRORS: ReadonlyArray<readonly [string, string[], string]> = [
  ['--runs 0', g('--runs', '0'), '--runs'],
  ['--runs abc', g('--runs', 'abc'), '--runs'],
  ['--runs 1.5', g('--runs', '1.5'), '--runs'],
  ['--runs missing its value', g('--runs'), '--runs'],
  ['--seed x', g('--seed', 'x'), '--seed'],
  ['--seed beyond 32 bits', g('--seed', '4294967296'), '--seed'],
  ['--consumers foo', g('--consumers', 'foo'), 'foo'],
  ['--consumers with an empty name', g('--consumers', 'correct,'), '--consumers'],
  ['--platforms nosuch', g('--platforms', 'nosuch'), 'nosuch'],
  ['--platforms with one unknown among known', g('--platforms', 'qemu-strict,nosuch'), 'nosuch'],
  ['--broken nosuch', g('--broken', 'nosuch'), 'nosuch'],
  ['--max-steps 0', g('--max-steps', '0'), '--max-steps'],
  ['--seconds -1', g('--seconds', '-1'), '--seconds'],
  ['unknown option --frobnicate (gate)', g('--frobnicate'), '--frobnicate'],
  ['unknown option --frobnicate (top level)', ['--frobnicate'], '--frobnicate'],
  ['unknown command', ['frobnicate'], 'frobnicate'],
  ['no command at all', [], 'command'],
  ['nightly --shard 3/2', n('--shard', '3/2'), '--shard'],
  ['nightly --shard x', n('--shard', 'x'), '--shard'],
  ['nightly --shard 0/2', n('--shard', '0/2'), '--shard'],
  ['nightly --shard 1/0', n('--shard', '1/0'), '--shard'],
  ['nightly without --shard', n(), '--shard'],
  ['nightly --runs 0', n('--shard', '1/1', '--runs', '0'), '--runs'],
  ['nightly --platforms nosuch', n('--shard', '1/1', '--platforms', 'nosuch'), 'nosuch'],
  ['replay with no token', ['replay'], 'token'],
  ['replay with a garbage token', ['replay', 'garbage'], 'dmadiff1.'],
  ['replay with an undecodable payload', ['replay', 'dmadiff1.!!!!'], 'token'],
  ['replay with a JSON array payload', ['replay', craftToken([1, 2])], 'token'],
  ['replay with an unknown platform', ['replay', craftToken({ ...GOOD_PAYLOAD, platform: 'nosuch' })], 'nosuch'],
  ['replay with an unknown seeded bug', ['replay', craftToken({ ...GOOD_PAYLOAD, faults: ['nosuch'] })], 'faults'],
  ['replay with an unknown consumer', ['replay', craftToken({ ...GOOD_PAYLOAD, consumers: ['nosuch'] })], 'consumers'],
  ['replay with a non-integer seed', ['replay', craftToken({ ...GOOD_PAYLOAD, seed: 1.5 })], 'seed'],
  ['replay with a bad path', ['replay', craftToken({ ...GOOD_PAYLOAD, path: '1;2' })], 'path'],
  ['replay with maxSteps 0', ['replay', craftToken({ ...GOOD_PAYLOAD, maxSteps: 0 })], 'maxSteps'],
  ['merge of no files', ['merge', '--corpus', corpus], 'files'],
  ['merge of a missing file', ['merge', join(dir, 'missing-shard.json'), '--corpus', corpus], 'missing-shard.json'],
  ['merge of a file that is not JSON', ['merge', file('not-json.json', '{"format":'), '--corpus', corpus], 'not-json.json'],
  ['merge of a non-shard JSON file', ['merge', file('other.json', JSON.stringify({ format: 'dmadiff-summary/1', platforms: [], failures: [] })), '--corpus', corpus], 'other.json'],
  ['merge of a JSON array', ['merge', file('array.json', '[]'), '--corpus', corpus], 'array.json'],
  ['merge of a shard missing its chunks', ['merge', file('nochunks.json', JSON.stringify({ format: 'dmadiff-shard/2', platforms: [], failures: [] })), '--corpus', corpus], 'nochunks.json'],
  ['merge of a /1 shard (before shards recorded their search)', ['merge', file('v1.json', JSON.stringify({ format: 'dmadiff-shard/1', shard: '1/1', seed: 1, runsPerPlatform: 25, chunks: ['0:0'], platforms: [], failures: [] })), '--corpus', corpus], 'v1.json'],
  ['scenario of a missing file', ['scenario', join(dir, 'missing-scenario.json')], 'missing-scenario.json'],
];

describe('bad flags, tokens and files: exit 2 and one stderr line "dmadiff: ..."', () => {
  it.each(USAGE_ERRORS)('%s', async (_what, argv, mentions) => {
    const r = await cli(argv);
    expect(r.code, `${r.err.join('\n')}\n${r.out.join('\n')}`).toBe(2);
    expect(r.err, r.err.join('\n')).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
    expect(r.err[0]).not.toContain('internal error');
    expect(r.err[0]).toContain(mentions);
  });

  it('a bad flag never creates the corpus directory or runs a search', async () => {
    const c = join(tmp.fresh('cli'), 'corpus');
    const r = await cli(['gate', '--corpus', c, '--platforms', 'nosuch']);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(existsSync(c)).toBe(false);
  });
});

/**
 * BUGS (found by this suite):
 *  1. `merge` validates only the top level of a shard document: a file holding JSON `null`, or a
 *     dmadiff-shard/1 document whose platform entry has no tally, crashes with
 *     "dmadiff: internal error: Cannot read properties of null (reading 'format')" /
 *     "... of undefined (reading 'runs')" and exit 3 instead of a usage error (exit 2) naming the
 *     file (commands.ts merge: `doc.format` on null; addTally(t, p.tally) with p.tally undefined).
 *  2. A shard whose failure carries an invalid scenario is exit 2, but the one error line does not
 *     name the file ("dmadiff: format: expected "dmadiff-scenario/1", got undefined"), unlike every
 *     other merge error, and the summary table has already been printed.
 *  3. `gate --platforms ,` (or an empty list) searches nothing and still says
 *     "verdict: PASS -- in 0 generated runs ..." with exit 0: a vacuous pass of the migration gate.
 *     An empty platform list should be a usage error.
 */
/** a complete one-shard search (qemu-strict, 25 runs: one chunk), for the cases to break one field of */
const SHARD_BASE = {
  format: 'dmadiff-shard/2',
  shard: '1/1',
  search: { seed: 1, runsPerPlatform: 25, platforms: ['qemu-strict'], consumers: ['correct'], maxSteps: 30, checkTrace: true, seededBugs: [], seconds: null },
  expectedChunks: 1,
  interrupted: false,
  chunks: ['0:0'],
};

describe('usage errors that are not reported as such (bugs)', () => {
  it('merge of a file holding JSON null: exit 2, one line naming the file', async () => {
    const f = file('null-shard.json', 'null\n');
    const r = await cli(['merge', f, '--corpus', corpus]);
    expect(r.err, r.err.join('\n')).toHaveLength(1);
    expect(r.err[0]).not.toContain('internal error');
    expect(r.err[0]).toContain('null-shard.json');
    expect(r.code).toBe(2);
  });

  it('merge of a shard whose platform entry has no tally: exit 2, one line naming the file', async () => {
    const f = file('notally-shard.json', JSON.stringify({ ...SHARD_BASE, platforms: [{ name: 'qemu-strict' }], failures: [] }));
    const r = await cli(['merge', f, '--corpus', corpus]);
    expect(r.err, r.err.join('\n')).toHaveLength(1);
    expect(r.err[0]).not.toContain('internal error');
    expect(r.err[0]).toContain('notally-shard.json');
    expect(r.code).toBe(2);
  });

  it('merge of a shard whose failure has an invalid scenario: the error line names the file', async () => {
    const f = file(
      'badscenario-shard.json',
      JSON.stringify({ ...SHARD_BASE, platforms: [], failures: [{ platform: 'qemu-strict', token: 't', hash: 'h', divergences: [], scenario: {} }] }),
    );
    const r = await cli(['merge', f, '--corpus', corpus]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toContain('badscenario-shard.json');
  });

  it.each([',', ''])('gate --platforms %j is a usage error, not a PASS over 0 runs', async (list) => {
    const r = await cli(['gate', '--corpus', join(tmp.fresh('cli'), 'corpus'), '--runs', '25', '--platforms', list]);
    expect(r.out.filter((l) => l.startsWith('verdict: PASS')), r.out.join('\n')).toEqual([]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
  });
});

/**
 * merge checks every field it later uses -- each failure's hash, platform, token and
 * divergences, every tally count and coverage branch -- before it prints or writes anything.
 */
describe('merge of a shard with a missing field: exit 2, one line naming the file and the field, nothing printed or created', () => {
  const COVERAGE = Object.fromEntries([...COVERAGE_COLUMNS, ...LIFECYCLE_ROWS].map((b) => [b, 0]));
  const TALLY = { runs: 25, steps: 100, divergences: 1, allowlisted: { D1: 1 }, coverage: COVERAGE };
  const SCENARIO = { format: 'dmadiff-scenario/1', devices: [{ id: 'dev', bdf: '00:02.0', pci: true, untrusted: false, dmaMask: 39 }], reserved: [], steps: [] };
  const FAILURE = { platform: 'qemu-strict', token: 'dmadiff1.x', hash: '0123456789abcdef', divergences: [{ step: 0, kind: 'consumer', detail: 'd' }], scenario: SCENARIO };
  const shard = (platforms: unknown[], failures: unknown[]): string => JSON.stringify({ ...SHARD_BASE, platforms, failures });

  it('control: the complete shard merges (so each case below fails on its one missing field)', async () => {
    const c = join(tmp.fresh('cli'), 'corpus');
    const r = await cli(['merge', file('complete-shard.json', shard([{ name: 'qemu-strict', tally: TALLY }], [FAILURE])), '--corpus', c]);
    expect(r.err, r.err.join('\n')).toEqual([]);
    expect(r.code).toBe(1);
    expect(existsSync(c)).toBe(true);
  });

  const { divergences: _d, ...noDivergences } = FAILURE;
  const { coverage: _c, ...noCoverage } = TALLY;
  const { steps: _s, ...noSteps } = TALLY;
  const CASES: ReadonlyArray<readonly [string, string, string]> = [
    ['a failure without divergences', shard([{ name: 'qemu-strict', tally: TALLY }], [noDivergences]), 'failures[0].divergences'],
    ['a tally without coverage', shard([{ name: 'qemu-strict', tally: noCoverage }], []), 'platforms[0].tally.coverage'],
    ['a tally without steps', shard([{ name: 'qemu-strict', tally: noSteps }], []), 'platforms[0].tally.steps'],
    ['an allowlist count that is not a count', shard([{ name: 'qemu-strict', tally: { ...TALLY, allowlisted: { D1: 'x' } } }], []), 'platforms[0].tally.allowlisted.D1'],
    ['a lifecycle cell missing', shard([{ name: 'qemu-strict', tally: { ...TALLY, coverage: { ...COVERAGE, 'to_device/trusted/sg/for_cpu': undefined } } }], []), 'platforms[0].tally.coverage.to_device/trusted/sg/for_cpu'],
    ['a coverage branch that is not a count', shard([{ name: 'qemu-strict', tally: { ...TALLY, coverage: { ...COVERAGE, fault: -1 } } }], []), 'platforms[0].tally.coverage.fault'],
    ['a divergence without a kind', shard([], [{ ...FAILURE, divergences: [{ step: 0, detail: 'd' }] }]), 'failures[0].divergences[0].kind'],
    ['a failure without a hash', shard([], [{ ...FAILURE, hash: undefined }]), 'failures[0].hash'],
  ];

  it.each(CASES)('%s', async (what, text, field) => {
    const c = join(tmp.fresh('cli'), 'corpus');
    const name = `${what.replace(/\W+/g, '-')}.json`;
    const r = await cli(['merge', file(name, text), '--corpus', c]);
    expect(r.code, `${r.err.join('\n')}\n${r.out.join('\n')}`).toBe(2);
    expect(r.err, r.err.join('\n')).toHaveLength(1);
    expect(r.err[0]).not.toContain('internal error');
    expect(r.err[0]).toContain(name);
    expect(r.err[0]).toContain(field);
    expect(r.out).toEqual([]);
    expect(existsSync(c)).toBe(false);
  });
});

/** Files that cannot be written are named on one line (exit 2), and no temporary is left behind. */
describe('an --out that cannot be written: exit 2, one line naming the path, no temporary left', () => {
  const temporaries = (d: string): string[] => readdirSync(d).filter((n) => n.includes('.tmp-'));

  it('nightly --out in a directory that does not exist', async () => {
    const d = tmp.fresh('cli');
    const out = join(d, 'nonexistent', 'x.json');
    const r = await cli(['nightly', ...searchArgs({ runs: 1, seed: 1, platforms: 'qemu-strict', consumers: 'correct', corpus: join(d, 'corpus') }), '--shard', '1/1', '--out', out]);
    expect(r.code, r.err.join('\n')).toBe(2);
    expect(r.err, r.err.join('\n')).toHaveLength(1);
    expect(r.err[0]).toBe(`dmadiff: cannot write ${out}: ENOENT`);
    expect(temporaries(d)).toEqual([]);
    expect(existsSync(join(d, 'nonexistent'))).toBe(false);
  });

  it('replay --out naming a directory', async () => {
    const d = tmp.fresh('cli');
    const g = await cli(['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus: join(d, 'corpus') })]);
    const f = printedFailures(g.out);
    expect(f, g.out.join('\n')).toHaveLength(1);
    const out = join(d, 'occupied');
    mkdirSync(out);
    const r = await cli(['replay', f[0]!.token, '--out', out]);
    expect(r.code, r.err.join('\n')).toBe(2);
    expect(r.err, r.err.join('\n')).toHaveLength(1);
    expect(r.err[0]!.startsWith(`dmadiff: cannot write ${out}: `)).toBe(true);
    expect(r.err[0]).not.toContain('internal error');
    expect(temporaries(d)).toEqual([]);
    expect(readdirSync(out)).toEqual([]);
  });

  it('gate --corpus below a regular file: the failure is still a FAIL (exit 1), its token and scenario on stdout, the reason on one stderr line', async () => {
    const d = tmp.fresh('cli');
    writeFileSync(join(d, 'plain'), '');
    const c = join(d, 'plain', 'corpus');
    const r = await cli(['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus: c })]);
    expect(r.code, r.err.join('\n')).toBe(1);
    expect(r.err, r.err.join('\n')).toEqual([`dmadiff: the failure below is not stored: cannot create directory ${c}: ENOTDIR`]);
    const token = r.out.find((l) => l.startsWith('  replay:   dmadiff replay '));
    expect(token, r.out.join('\n')).toBeDefined();
    const scen = r.out.find((l) => l.startsWith('  scenario (not stored): '));
    expect(scen, r.out.join('\n')).toBeDefined();
    // the printed scenario is a complete dmadiff-scenario/1 document that reproduces the failure
    const f = join(d, 'printed.scenario.json');
    writeFileSync(f, scen!.slice('  scenario (not stored): '.length));
    const again = await cli(['scenario', f]);
    expect(again.code, again.out.join('\n')).toBe(1);
    expect(r.out[r.out.length - 1]).toMatch(/^verdict: FAIL -- /);
  });
});

describe('--help of every command: exit 0, usage on stdout, nothing on stderr', () => {
  const HELP: ReadonlyArray<readonly [string, string[]]> = [
    ['dmadiff', ['--help']],
    ['gate', ['gate', '--help']],
    ['nightly', ['nightly', '--help']],
    ['merge', ['merge', '--help']],
    ['replay', ['replay', '--help']],
    ['scenario', ['scenario', '--help']],
    ['demo', ['demo', '--help']],
    ['help gate', ['help', 'gate']],
  ];

  it.each(HELP)('%s', async (name, argv) => {
    const r = await cli(argv);
    expect(r.code, r.err.join('\n')).toBe(0);
    expect(r.err).toEqual([]);
    const usage = r.out.find((l) => l.startsWith('Usage: dmadiff'));
    expect(usage, r.out.join('\n')).toBeDefined();
    if (name !== 'dmadiff') expect(usage).toContain(name.replace(/^help /, ''));
  });

  it('the help of the search commands lists the search flags, --broken with every seeded bug', async () => {
    for (const cmd of ['gate', 'nightly']) {
      const text = (await cli([cmd, '--help'])).out.join('\n');
      for (const flag of ['--runs', '--seed', '--consumers', '--platforms', '--corpus', '--broken', '--max-steps', '--seconds']) expect(text, `${cmd} ${flag}`).toContain(flag);
      for (const bug of ['noIotlbSync', 'noIotlbSyncMap', 'noBouncePaddingZero', 'mergeIgnoresMaxSeg', 'lazyUntrusted']) expect(text.replace(/\s+/g, ' '), `${cmd} ${bug}`).toContain(bug);
    }
    expect((await cli(['nightly', '--help'])).out.join('\n')).toContain('--shard');
  });
});
