/**
 * Verdicts a CI can trust (issue 17), one block per finding:
 *  1. the corpus keeps what each entry needs, so the README's two gates give FAIL then PASS;
 *  2. nightly exits 1 on a divergence, prints its token, and keeps its own corpus;
 *  3. a failure is stored the moment it is shrunk; SIGINT/SIGTERM print the verdict so far;
 *  5. a scenario names its seeded bugs, and `scenario`/`replay --out` keep them;
 *  6. merge refuses a shard set that is not one complete search, unless --partial;
 *  7. any offset whose address fits in 64 bits is a legitimate probe;
 *  9. the progress line has an ETA and is wiped before other output.
 * (4, corrupt entries, is in replay-corpus.test.ts; 8 and 10, packaging and workflows, in
 * ../packaging/.) Every expectation is written out here from the issue and the README.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../harness/cli.js';
import { loadCorpus } from '../../harness/search/corpus.js';
import { decodeToken } from '../../harness/search/token.js';
import { EDU, scenarioJson } from '../support/scenario.js';
import { TmpDirs, cli, printedFailures, readScenarioFile, searchArgs, type CliRun } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const lastLine = (r: CliRun): string => r.out[r.out.length - 1] ?? '';

describe('1. corpus entries record what they need: FAIL with i915, then PASS with i915-fixed in the same corpus', () => {
  it('the i915 entry is "not applicable" to a gate without the i915 consumer, naming the flag', async () => {
    const corpus = tmp.fresh('ci');
    const first = await cli(['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus })]);
    expect(first.code, first.out.join('\n')).toBe(1);
    expect(lastLine(first)).toMatch(/^verdict: FAIL/);
    const [f] = printedFailures(first.out);
    const entry = JSON.parse(readFileSync(f!.corpus, 'utf8')) as { format: string; needs: unknown };
    expect(entry.format).toBe('dmadiff-corpus/2');
    expect(entry.needs).toEqual({ platform: 'qemu-strict', consumers: ['i915'], seededBugs: [], trace: false });

    const second = await cli(['gate', ...searchArgs({ runs: 25, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus })]);
    expect(second.code, second.out.join('\n')).toBe(0);
    expect(second.out[0]).toBe(`corpus ${corpus}: 1 entry: 0 still failing, 0 fixed, 1 not applicable, 0 unreadable`);
    expect(second.out[1]).toBe(`corpus ${f!.corpus}: not applicable: needs consumer i915, not in --consumers correct,i915-fixed`);
    expect(lastLine(second)).toMatch(/^verdict: PASS/);
    // kept: the entry is still there for the gate that has the consumer
    expect(existsSync(f!.corpus)).toBe(true);
  });

  it('an entry from another platform is not applicable to --platforms without it', async () => {
    const corpus = tmp.fresh('ci');
    await cli(['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus })]);
    const r = await cli(['gate', ...searchArgs({ runs: 25, seed: 1, platforms: 'caching-mode', consumers: 'correct,i915', corpus })]);
    expect(r.out[1]).toMatch(/: not applicable: found on platform qemu-strict, not in --platforms caching-mode$/);
  });

  it('a /1 entry (no needs recorded) is still read: its needs are derived from its steps and token', async () => {
    const corpus = tmp.fresh('ci');
    const first = await cli(['gate', ...searchArgs({ runs: 50, seed: 2, platforms: 'qemu-strict', consumers: 'correct,i915', corpus })]);
    const [f] = printedFailures(first.out);
    const v2 = JSON.parse(readFileSync(f!.corpus, 'utf8')) as Record<string, unknown>;
    const { needs: _n, ...v1 } = v2;
    writeFileSync(f!.corpus, JSON.stringify({ ...v1, format: 'dmadiff-corpus/1' }));
    const without = await cli(['gate', ...searchArgs({ runs: 25, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus })]);
    expect(without.code, without.out.join('\n')).toBe(0);
    expect(without.out[1]).toContain('not applicable: needs consumer i915');
    const withIt = await cli(['gate', ...searchArgs({ runs: 25, seed: 1, platforms: 'qemu-strict', consumers: 'correct,i915', corpus })]);
    expect(withIt.code).toBe(1);
    expect(withIt.out[1]).toContain(': still failing on qemu-strict: ');
  });

  it('an entry written by a newer dmadiff is kept and not replayed, and is not counted as unreadable', async () => {
    const corpus = tmp.fresh('ci');
    const file = join(corpus, 'future.json');
    writeFileSync(file, JSON.stringify({ format: 'dmadiff-corpus/9', whatever: true }));
    const r = await cli(['gate', ...searchArgs({ runs: 25, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus })]);
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(r.out[0]).toBe(`corpus ${corpus}: 1 entry: 0 still failing, 0 fixed, 0 not applicable, 0 unreadable, 1 newer`);
    expect(r.out[1]).toBe(`corpus ${file}: written by a newer dmadiff (dmadiff-corpus/9); kept, not replayed`);
    expect(readFileSync(file, 'utf8')).toContain('"whatever"');
  });
});

describe('2. nightly and gate agree', () => {
  it('a nightly that finds a divergence exits 1, prints each token, and stores it in its --corpus', async () => {
    const corpus = tmp.fresh('ci');
    const out = join(tmp.fresh('ci'), 'shard.json');
    const r = await cli(['nightly', '--shard', '1/1', '--out', out, '--broken', 'noIotlbSyncMap', ...searchArgs({ runs: 50, seed: 3, platforms: 'caching-mode', consumers: 'correct', corpus })]);
    expect(r.code, r.out.join('\n')).toBe(1);
    const fs = printedFailures(r.out);
    expect(fs.length).toBeGreaterThan(0);
    for (const f of fs) {
      expect(decodeToken(f.token).token.faults).toEqual(['noIotlbSyncMap']);
      expect(f.corpus.startsWith(corpus)).toBe(true);
      expect(existsSync(f.corpus)).toBe(true);
    }
    expect(lastLine(r)).toMatch(/^verdict: FAIL -- /);
  });

  it('the nightly search keeps its own corpus by default, never the gate\'s', async () => {
    const gate = await cli(['gate', '--help']);
    const nightly = await cli(['nightly', '--help']);
    const corpusDefault = (r: CliRun): string | undefined => /--corpus <dir>[\s\S]*?\(default:\s+"([^"]+)"\)/.exec(r.out.join('\n'))?.[1];
    expect(corpusDefault(gate)).toBe('.dmadiff/corpus');
    expect(corpusDefault(nightly)).toBe('.dmadiff/nightly-corpus');
  });
});

describe('3. nothing found is lost', () => {
  const longBrokenGate = (corpus: string): string[] => ['gate', '--broken', 'noIotlbSyncMap', ...searchArgs({ runs: 5000, seed: 1, platforms: 'caching-mode,qemu-strict', consumers: 'correct', corpus })];

  it('in process: an interrupt after the first failure stops the search, prints INTERRUPTED with the token, exit 5; the entry was stored when found', async () => {
    const corpus = tmp.fresh('ci');
    const out: string[] = [];
    let stop: string | undefined;
    let storedWhenPrinted: boolean | undefined;
    const code = await main(
      longBrokenGate(corpus),
      (s) => {
        for (const l of s.split('\n')) {
          out.push(l);
          const m = /^ {2}corpus: {3}(\S+)$/.exec(l);
          if (m !== null) {
            storedWhenPrinted = existsSync(m[1]!);
            stop = 'SIGINT';
          }
        }
      },
      () => undefined,
      { interrupted: () => stop },
    );
    expect(code, out.join('\n')).toBe(5);
    expect(storedWhenPrinted).toBe(true);
    const [f] = printedFailures(out);
    const v = out.findIndex((l) => l.startsWith('verdict: '));
    expect(out[v]).toMatch(/^verdict: INTERRUPTED by SIGINT -- the search stopped after \d+ generated runs; 1 failure\(s\) found so far/);
    expect(out[v + 1]).toBe(`  dmadiff replay ${f!.token}`);
    // the table shows what ran: far less than the budget
    const runs = Number(/after (\d+) generated runs/.exec(out[v]!)![1]);
    expect(runs).toBeLessThan(2 * 5000);
    expect(loadCorpus(corpus).map((e) => e.entry?.token)).toEqual([f!.token]);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('a real %s to the process: exit 5 within seconds, verdict and token on stdout, the entry in the corpus', async (sig) => {
    const corpus = tmp.fresh('ci');
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'dmadiff.js'), ...longBrokenGate(corpus)], { cwd: ROOT, env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    let sentAt = 0;
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (sentAt === 0 && /\n {2}corpus: {3}\S+\n/.test(stdout)) {
          sentAt = Date.now();
          child.kill(sig);
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(sentAt, `${stdout}\n${stderr}`).toBeGreaterThan(0);
    expect(Date.now() - sentAt).toBeLessThan(20_000);
    expect(code, `${stdout}\n${stderr}`).toBe(5);
    expect(stdout).toMatch(new RegExp(`verdict: INTERRUPTED by ${sig} -- `));
    const token = /replay: {3}dmadiff replay (\S+)/.exec(stdout)![1]!;
    expect(stdout).toContain(`\n  dmadiff replay ${token}\n`);
    expect(stderr).toContain(`dmadiff: ${sig}: stopping`);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(loadCorpus(corpus).map((e) => e.entry?.token)).toEqual([token]);
  }, 60_000);

  it("a terminal's Ctrl-C (SIGINT to the whole process group: the launcher and the CLI's node): one interrupt, exit 5", async () => {
    const corpus = tmp.fresh('ci');
    // its own process group, as a terminal's foreground job is
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'dmadiff.js'), ...longBrokenGate(corpus)], { cwd: ROOT, env: { ...process.env, CI: '1' }, detached: true });
    let stdout = '';
    let stderr = '';
    let cliArgv: string[] = [];
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        const first = !/\n {2}corpus: {3}\S+\n/.test(stdout);
        stdout += d.toString();
        if (first && /\n {2}corpus: {3}\S+\n/.test(stdout)) {
          // the node the launcher started, running the search: its command line (Linux's /proc)
          const [cli] = readFileSync(`/proc/${child.pid!}/task/${child.pid!}/children`, 'utf8').trim().split(/\s+/);
          cliArgv = readFileSync(`/proc/${cli!}/cmdline`, 'utf8').split('\0');
          process.kill(-child.pid!, 'SIGINT');
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, `${stdout}\n${stderr}`).toBe(5);
    expect(stdout).toMatch(/verdict: INTERRUPTED by SIGINT -- /);
    expect(stderr.match(/dmadiff: SIGINT: stopping/g)).toHaveLength(1);
    // the search ran in a node with dmadiff's young generation (bin/launch.js)
    expect(cliArgv.slice(1, 3)).toEqual(['--max-semi-space-size=64', join(ROOT, 'bin', 'dmadiff.js')]);
  }, 60_000);
});

describe('5. a scenario names its seeded bugs', () => {
  it('replay --out of a --broken failure writes them, and `scenario` on that file reproduces it', async () => {
    const corpus = tmp.fresh('ci');
    const g = await cli(['gate', '--broken', 'noIotlbSyncMap', ...searchArgs({ runs: 25, seed: 1, platforms: 'caching-mode', consumers: 'correct', corpus })]);
    const [f] = printedFailures(g.out);
    const file = join(tmp.fresh('ci'), 'replayed.json');
    const r = await cli(['replay', f!.token, '--out', file]);
    expect(r.code).toBe(1);
    const s = readScenarioFile(file) as unknown as { seededBugs?: string[] };
    expect(s.seededBugs).toEqual(['noIotlbSyncMap']);
    const again = await cli(['scenario', file]);
    expect(again.code, again.out.join('\n')).toBe(1);
  });

  it.each([
    ['an unknown name', ['noSuchBug'], 'seededBugs[0]'],
    ['a name twice', ['noIotlbSync', 'noIotlbSync'], 'seededBugs[1]'],
    ['not a list', 'noIotlbSync', 'seededBugs'],
  ] as const)('%s is a one-line error naming the field, exit 2', async (_what, bugs, field) => {
    const file = join(tmp.fresh('ci'), 'bad.json');
    writeFileSync(file, JSON.stringify({ ...scenarioJson({ steps: [] }), seededBugs: bugs }));
    const r = await cli(['scenario', file]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toContain(`${field}:`);
  });
});

describe('6. merge takes only the complete shard set of one search, unless --partial', () => {
  const nightly = async (shard: string, extra: { runs?: number; seed?: number; consumers?: string } = {}): Promise<string> => {
    const out = join(tmp.fresh('ci'), `shard-${shard.replace('/', 'of')}.json`);
    const r = await cli([
      'nightly',
      '--shard',
      shard,
      '--out',
      out,
      ...searchArgs({ runs: extra.runs ?? 50, seed: extra.seed ?? 1, platforms: 'qemu-strict', consumers: extra.consumers ?? 'correct,i915-fixed', corpus: tmp.fresh('ci') }),
    ]);
    if (r.code !== 0) throw new Error(r.out.join('\n'));
    return out;
  };
  let s1: string;
  let s2: string;

  it('the two shards of one search merge (control)', async () => {
    s1 = await nightly('1/2');
    s2 = await nightly('2/2');
    const r = await cli(['merge', s1, s2, '--corpus', tmp.fresh('ci')]);
    expect(r.code, r.err.join('\n')).toBe(0);
  });

  it('1/2 without 2/2: exit 2, one line naming what is missing; --partial merges it as INCONCLUSIVE (exit 4)', async () => {
    const r = await cli(['merge', s1, '--corpus', tmp.fresh('ci')]);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual(['dmadiff: merge: incomplete shard set: shard 2/2 missing (pass --partial to merge the shards that finished)']);
    const summary = join(tmp.fresh('ci'), 'summary.json');
    const md = join(tmp.fresh('ci'), 'summary.md');
    const p = await cli(['merge', s1, '--partial', '--out', summary, '--markdown', md, '--corpus', tmp.fresh('ci')]);
    expect(p.code, p.out.join('\n')).toBe(4);
    expect(p.out).toContain('partial: shard 2/2 missing');
    expect(lastLine(p)).toMatch(/^verdict: INCONCLUSIVE -- /);
    expect(JSON.parse(readFileSync(summary, 'utf8'))).toMatchObject({ complete: false, gaps: ['shard 2/2 missing'], shards: ['1/2'] });
    const text = readFileSync(md, 'utf8');
    expect(text).toContain('**INCONCLUSIVE');
    expect(text).toContain('- shard 2/2 missing');
    expect(text).toMatch(/```\nplatform +runs/);
  });

  it.each([
    ['a different budget', { runs: 75 }, '--runs: 50 vs 75'],
    ['different consumers', { consumers: 'correct' }, '--consumers: ["correct","i915-fixed"] vs ["correct"]'],
    ['a different seed', { seed: 9 }, '--seed: 1 vs 9'],
  ] as const)('shards of %s: exit 2 naming the flag, even with --partial', async (_what, extra, diff) => {
    const other = await nightly('2/2', extra);
    for (const partial of [[], ['--partial']]) {
      const r = await cli(['merge', s1, other, ...partial, '--corpus', tmp.fresh('ci')]);
      expect(r.code).toBe(2);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toContain('mixed shards');
      expect(r.err[0]).toContain(diff);
    }
  });

  it('a merged failure appears in the markdown summary with its token', async () => {
    const dir = tmp.fresh('ci');
    const out = join(dir, 's.json');
    await cli(['nightly', '--shard', '1/1', '--out', out, '--broken', 'noIotlbSyncMap', ...searchArgs({ runs: 25, seed: 1, platforms: 'caching-mode', consumers: 'correct', corpus: tmp.fresh('ci') })]);
    const md = join(dir, 'summary.md');
    const r = await cli(['merge', out, '--markdown', md, '--corpus', tmp.fresh('ci')]);
    expect(r.code).toBe(1);
    const token = /replay: dmadiff replay (\S+)/.exec(r.out.join('\n'))![1]!;
    expect(readFileSync(md, 'utf8')).toContain(`\`dmadiff replay ${token}\``);
  });
});

describe('7. offsets: any offset whose address fits in 64 bits', () => {
  const probe = (offset: number | string, extra: Record<string, unknown>[] = []): Record<string, unknown> =>
    scenarioJson({
      devices: [EDU],
      steps: [{ op: 'map_page', dev: 'dev', phys: '0x100000', size: 4096, dir: 'to_device', as: 'm' }, { op: 'dma_read', map: 'm', offset, len: 8 }, ...extra],
    });

  it.each([0x7f00000000, '0x7f00000000', 2 ** 52])('a read at %s past a mapping (beyond the 39-bit width) runs: both paths fault alike', async (offset) => {
    const file = join(tmp.fresh('ci'), 'probe.json');
    writeFileSync(file, JSON.stringify(probe(offset)));
    const r = await cli(['scenario', file]);
    expect(r.err).toEqual([]);
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(r.out.filter((l) => l.includes('FAULT')).length).toBe(2);
  });

  it('an offset taking the address below 0: exit 2, one line naming the step field', async () => {
    const file = join(tmp.fresh('ci'), 'probe.json');
    writeFileSync(file, JSON.stringify(probe('-0x100000000')));
    const r = await cli(['scenario', file]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^dmadiff: steps\[1\]\.offset: .*outside 64 bits$/);
  });

  it('a corpus entry holding such a step is unreadable (kept, named in the verdict), not a crash of the gate', async () => {
    const corpus = tmp.fresh('ci');
    const file = join(corpus, 'outside.json');
    const entry = { format: 'dmadiff-corpus/2', needs: { platform: 'qemu-strict', consumers: [], seededBugs: [], trace: false }, platform: 'qemu-strict', token: 't', divergences: [], scenario: probe('-0x100000000') };
    writeFileSync(file, JSON.stringify(entry));
    const r = await cli(['gate', ...searchArgs({ runs: 25, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus })]);
    expect(r.code, r.out.join('\n')).toBe(2);
    expect(r.out[1]).toMatch(/^corpus .*outside\.json: unreadable: scenario\.steps\[1\]\.offset: .*outside 64 bits \(kept\)$/);
    expect(lastLine(r)).toMatch(/^verdict: UNREADABLE CORPUS -- 1 entry of /);
    expect(existsSync(file)).toBe(true);
  });

  it.each([2 ** 60, '0xffffffffffffffff', 1.5, 'x'])('offset %s is refused at validation, naming the field', async (offset) => {
    const file = join(tmp.fresh('ci'), 'probe.json');
    writeFileSync(file, JSON.stringify(probe(offset)));
    const r = await cli(['scenario', file]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/^dmadiff: steps\[1\]\.offset: /);
  });
});

describe('9. the progress line', () => {
  it('carries an ETA and is wiped before the table and the verdict', async () => {
    const events: string[] = [];
    const code = await main(
      ['gate', ...searchArgs({ runs: 50, seed: 4, platforms: 'qemu-strict', consumers: 'correct,i915-fixed', corpus: tmp.fresh('ci') })],
      (s) => events.push(`out:${s}`),
      (s) => events.push(`err:${s}`),
      { progress: { write: (s: string) => events.push(`tty:${s}`) } },
    );
    expect(code).toBe(0);
    const progress = events.filter((e) => e.startsWith('tty:') && e.length > 'tty:\r\x1b[2K'.length);
    expect(progress.length).toBeGreaterThan(0);
    for (const p of progress) expect(p).toMatch(/ETA \d+(m\d\ds|s)$/);
    // every output line that follows a progress update has a wipe between them
    let dirty = false;
    for (const e of events) {
      if (e.startsWith('tty:')) dirty = e !== 'tty:\r\x1b[2K';
      else expect(dirty, `output "${e}" written over the progress line`).toBe(false);
    }
    const table = events.findIndex((e) => e.startsWith('out:platform '));
    expect(events[table - 1]).toBe('tty:\r\x1b[2K');
  });
});

describe('exit codes', () => {
  it('--version prints the package version and exits 0', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.out).toEqual([`dmadiff ${pkg.version} (legacy intel-iommu: Linux 5.10.262; dma-iommu: Linux 6.1.192)`]);
  });

  it('the README documents every exit code the CLI uses', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const [code, meaning] of [
      ['0', 'pass'],
      ['1', 'divergence'],
      ['2', 'bad usage'],
      ['3', 'internal error'],
      ['4', 'inconclusive'],
      ['5', 'interrupted'],
    ]) {
      expect(readme, `exit ${code}`).toMatch(new RegExp(`\\| ${code} \\| [^|]*${meaning}`, 'i'));
    }
    expect(readdirSync(ROOT)).toContain('README.md');
  });
});
