#!/usr/bin/env node
// The dmadiff command. Plain JS because it runs before anything compiled: in a development
// checkout it (re)builds dist/ when it is missing or older than the sources, so the CLI never runs
// stale code; an installed package has no sources and only loads its dist/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { staleSources } from './freshness.js';
import { needsFlags, onlyAsks, relaunch, wasRelaunched } from './launch.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'harness', 'cli.js');

/** One line on stderr and exit 2: every bad state ends this way, never with a stack trace. */
function fail(line) {
  process.stderr.write(`dmadiff: ${line}\n`);
  process.exit(2);
}

function firstLine(e) {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

/** tsc, when this is a checkout with sources and the compiler installed; otherwise undefined. */
function compiler() {
  if (!existsSync(join(root, 'harness', 'cli.ts')) || !existsSync(join(root, 'tsconfig.json'))) return undefined;
  try {
    return createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

/** What needs doing: undefined when dist/ is current, else the reason. */
function needsBuild() {
  if (!existsSync(cli)) return 'missing';
  return staleSources(root).length > 0 ? 'stale' : undefined;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `fn` holding dist/.build-lock, so dmadiff processes started together (parallel tests)
 * do not run tsc over each other or load files another tsc is half way through writing.
 */
function withBuildLock(fn) {
  const lock = join(root, 'dist', '.build-lock');
  // a lock older than any build is left over from a killed process
  const abandonedMs = 5 * 60_000;
  try {
    mkdirSync(join(root, 'dist'), { recursive: true });
    for (;;) {
      try {
        mkdirSync(lock);
        break;
      } catch (e) {
        if (!(e instanceof Error && 'code' in e && e.code === 'EEXIST')) throw e;
      }
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
      if (since !== undefined && Date.now() - since > abandonedMs) rmSync(lock, { recursive: true, force: true });
      Atomics.wait(sleeper, 0, 0, 100);
    }
  } catch (e) {
    fail(`cannot lock dist/ for a build: ${firstLine(e)}`);
  }
  try {
    fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function ensureBuilt() {
  const why = needsBuild();
  if (why === undefined) return;
  const tsc = compiler();
  if (tsc === undefined) {
    fail(
      why === 'missing'
        ? 'dist/ is missing and cannot be built here: run npm run build'
        : 'sources changed since the last build and cannot be rebuilt here: run npm run build',
    );
  }
  let failed = false;
  withBuildLock(() => {
    // another dmadiff may have built it while this one waited for the lock
    const now = needsBuild();
    if (now === undefined) return;
    process.stderr.write(
      now === 'missing'
        ? 'dmadiff: dist/ is missing; building it (npm run build)\n'
        : 'dmadiff: sources changed since the last build; rebuilding (npm run build)\n',
    );
    // --noEmitOnError: a failed build must not leave .js newer than the sources, which would
    // pass for fresh on the next run; tsc's report goes to stderr so stdout stays the CLI's
    const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json'), '--noEmitOnError'], {
      cwd: root,
      stdio: ['ignore', 2, 2],
    });
    failed = r.status !== 0 || !existsSync(cli);
  });
  if (failed) fail('the build failed; run npm run build to see the errors');
}

// a command runs in a node with dmadiff's V8 flags (launch.js), started here when this one lacks
// them; that node finds dist/ built by the one that started it
const args = process.argv.slice(2);
const relaunched = wasRelaunched();
if (!relaunched) ensureBuilt();
if (!relaunched && needsFlags() && !onlyAsks(args)) relaunch(fileURLToPath(import.meta.url), args, fail);
else await runCli();

async function runCli() {
  let main;
  try {
    ({ main } = await import(pathToFileURL(cli).href));
  } catch (e) {
    fail(`cannot load the CLI: ${firstLine(e)}`);
  }
  try {
    process.exitCode = await main(args);
  } catch (e) {
    process.stderr.write(`dmadiff: internal error: ${firstLine(e)}\n`);
    process.exitCode = 3;
  }
}
