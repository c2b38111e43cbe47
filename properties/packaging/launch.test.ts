/**
 * bin/launch.js: the CLI runs in a node with dmadiff's V8 flags, started by bin/dmadiff.js when
 * the node it was given lacks them -- arguments, exit codes and signals pass through, the flags
 * are not added twice, and a size chosen by hand is kept.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_FLAGS, onlyAsks, youngGenerationChosen } from '../../bin/launch.js';
import { REPO } from './clone.js';

const dir = mkdtempSync(join(tmpdir(), 'dmadiff-launch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A stand-in for bin/dmadiff.js using the launcher the same way: relaunched, it prints what its
 * node was given, then exits with its first argument as its code, or raises it as a signal.
 */
const script = join(dir, 'entry.mjs');
writeFileSync(
  script,
  `import { needsFlags, relaunch, wasRelaunched } from ${JSON.stringify(pathToFileURL(join(REPO, 'bin', 'launch.js')).href)};
import { fileURLToPath } from 'node:url';
const relaunched = wasRelaunched();
if (!relaunched && needsFlags()) {
  relaunch(fileURLToPath(import.meta.url), process.argv.slice(2), (line) => { console.error(line); process.exit(2); });
} else {
  console.log(JSON.stringify({ relaunched, execArgv: process.execArgv, args: process.argv.slice(2), mark: process.env.DMADIFF_LAUNCHED ?? null }));
  const end = process.argv[2];
  if (end.startsWith('SIG')) process.kill(process.pid, end);
  else process.exit(Number(end));
}
`,
);

interface Seen {
  relaunched: boolean;
  execArgv: string[];
  args: string[];
  mark: string | null;
}

function start(nodeArgs: readonly string[], args: readonly string[], env: Record<string, string> = {}): { seen: Seen; code: number | null; signal: string | null } {
  const r = spawnSync(process.execPath, [...nodeArgs, script, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { seen: JSON.parse(r.stdout) as Seen, code: r.status, signal: r.signal };
}

describe('bin/launch.js', () => {
  it('runs the entry again in a node with NODE_FLAGS, once, with its arguments and exit code', () => {
    expect(NODE_FLAGS).toEqual(['--max-semi-space-size=64']);
    const r = start(['--no-warnings'], ['4', '--spaced arg']);
    expect(r.seen).toEqual({ relaunched: true, execArgv: ['--max-semi-space-size=64', '--no-warnings'], args: ['4', '--spaced arg'], mark: null });
    expect(r.code).toBe(4);
  });

  it('keeps a young-generation size chosen by hand, on the command line or in NODE_OPTIONS', () => {
    const flag = start(['--max-semi-space-size=8'], ['0']);
    expect(flag.seen).toMatchObject({ relaunched: false, execArgv: ['--max-semi-space-size=8'] });
    const opts = start([], ['0'], { NODE_OPTIONS: '--max-semi-space-size=8' });
    expect(opts.seen).toMatchObject({ relaunched: false, execArgv: [] });
    expect(opts.code).toBe(0);
  });

  it('stays in the node it was given under a debugger (the inspector port is that node\'s)', () => {
    const r = start(['--inspect=127.0.0.1:0'], ['0']);
    expect(r.seen).toMatchObject({ relaunched: false, execArgv: ['--inspect=127.0.0.1:0'] });
  });

  it('ends the way the relaunched node ended: killed by a signal, by the same signal', () => {
    const r = start([], ['SIGTERM']);
    expect(r.seen.relaunched).toBe(true);
    expect(r.code).toBeNull();
    expect(r.signal).toBe('SIGTERM');
  });

  it('answers help and the version in the node it was given, and starts another for any command', () => {
    for (const a of [[], ['--help'], ['-h'], ['help'], ['--version'], ['-V'], ['gate', '--help']]) expect(onlyAsks(a), a.join(' ')).toBe(true);
    for (const a of [['gate'], ['scenario', 'x.json'], ['nightly', '--shard', '1/8'], ['replay', 'TOKEN']]) expect(onlyAsks(a), a.join(' ')).toBe(false);
  });

  it.each([
    [['--max-semi-space-size=8'], undefined, true],
    [['--max_semi_space_size=8'], undefined, true],
    [['--min-semi-space-size=2'], undefined, true],
    [[], '--max-old-space-size=4096 --max-semi-space-size=32', true],
    [['--max-old-space-size=4096', '--semi-space-growth-factor=2'], '--expose-gc', false],
    [[], undefined, false],
  ] as const)('youngGenerationChosen(%j, %j) is %s', (argv, opts, chosen) => {
    expect(youngGenerationChosen(argv, opts)).toBe(chosen);
  });
});
