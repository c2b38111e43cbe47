/**
 * Helpers for the packaging tests: a fresh clone of this repository that carries the working
 * tree's uncommitted changes, and a child-process runner whose failures say what the process
 * printed.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file lives in properties/packaging/). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `cmd args` in `cwd` with CI set (no progress lines), capturing its output. */
export function run(cmd: string, args: readonly string[], cwd: string, env: Readonly<Record<string, string>> = {}): Ran {
  const t = Date.now();
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, CI: '1', ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.error !== undefined ? String(r.error) : r.stderr ?? '', ms: Date.now() - t };
}

function tail(s: string, lines = 25): string {
  return s.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A description of a run for an assertion message: the command, its exit code and output tails. */
export function describeRun(what: string, r: Ran): string {
  return `${what} exited ${String(r.code)}\n--- stdout (tail)\n${tail(r.stdout)}\n--- stderr (tail)\n${tail(r.stderr)}`;
}

/** Runs a command that must succeed; throws with its output tails when it does not. */
export function must(cmd: string, args: readonly string[], cwd: string): Ran {
  const r = run(cmd, args, cwd);
  if (r.code !== 0) throw new Error(describeRun(`${cmd} ${args.join(' ')}`, r));
  return r;
}

function lines0(s: string): string[] {
  return s.split('\0').filter((f) => f.length > 0);
}

/**
 * Clones REPO into `dest` (a directory that does not exist yet) and lays the working tree's
 * uncommitted work over it: every file that differs from HEAD (staged or not; a plain
 * `ls-files -m` would miss staged-only changes) or is untracked and not ignored is copied, and
 * every file deleted since HEAD is deleted. What a fresh clone of the next commit would hold.
 */
export function cloneWorkingTree(dest: string): void {
  must('git', ['clone', '--quiet', REPO, dest], REPO);
  const changed = lines0(must('git', ['diff', '--name-only', '-z', 'HEAD'], REPO).stdout);
  const untracked = lines0(must('git', ['ls-files', '-o', '--exclude-standard', '-z'], REPO).stdout);
  for (const f of new Set([...changed, ...untracked])) {
    const from = join(REPO, f);
    const to = join(dest, f);
    if (existsSync(from)) {
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(from, to);
    } else {
      rmSync(to, { force: true });
    }
  }
}
