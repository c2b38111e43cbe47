// The node dmadiff runs in: V8 flags, and the relaunch that applies them. Plain JS because
// bin/dmadiff.js uses it before anything is compiled (npm run bench uses it too).
import { spawn } from 'node:child_process';

/**
 * A young generation of 64 MB semi-spaces, not node's default 16 MB. A checked step allocates
 * about 10 KB that dies young, so the scavenger runs every few thousand steps; with a million
 * live mappings the old generation holds over a gigabyte, and then each scavenge costs two to
 * three times what it costs over a small heap -- the same when that gigabyte is unrelated
 * objects, so it is V8's doing, not dmadiff's structures. Four times fewer scavenges: a checked
 * step at a million live mappings 21 -> 13 µs, at a thousand 13 -> 9 (npm run bench, this
 * machine).
 */
export const NODE_FLAGS = ['--max-semi-space-size=64'];

/** Whether the young generation's size was chosen by whoever started node (flags or NODE_OPTIONS). */
export function youngGenerationChosen(execArgv, nodeOptions) {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  return given.some((a) => /^--(max|min)[-_]semi[-_]space[-_]size\b/.test(a));
}

/** Set in the relaunched node, so that it does not relaunch again. */
const LAUNCHED = 'DMADIFF_LAUNCHED';

/**
 * Whether this process is the node relaunch() started. Clears the mark, so that a dmadiff this
 * one starts decides for itself.
 */
export function wasRelaunched() {
  const launched = process.env[LAUNCHED] === '1';
  delete process.env[LAUNCHED];
  return launched;
}

/**
 * Whether this node lacks NODE_FLAGS' young generation (and nobody chose another size). Not
 * under a debugger: the inspector's port is this node's, a second one could not listen on it.
 */
export function needsFlags() {
  if (process.execArgv.some((a) => a.startsWith('--inspect'))) return false;
  return !youngGenerationChosen(process.execArgv, process.env.NODE_OPTIONS);
}

/** Arguments that only ask for help or the version (or none): answered without a second node (it costs 0.13 s). */
export function onlyAsks(args) {
  return args.length === 0 || args.some((a) => a === '-h' || a === '--help' || a === 'help' || a === '-V' || a === '--version');
}

/**
 * Run `script` with `args` in a child node started with NODE_FLAGS, and leave with its exit
 * code (or its signal). SIGINT and SIGTERM sent to this process are passed on: the CLI stops a
 * search on the first and quits on a second, and takes two within a moment for one (a terminal's
 * Ctrl-C reaches both processes). `onError(line)` is told when the child cannot be started.
 */
export function relaunch(script, args, onError) {
  const child = spawn(process.execPath, [...NODE_FLAGS, ...process.execArgv, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [LAUNCHED]: '1' },
  });
  const forward = (sig) => child.kill(sig);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, forward);
  child.on('error', (e) => onError(`cannot start node for dmadiff: ${e.message}`));
  child.on('exit', (code, signal) => {
    if (signal !== null) {
      // end the same way the child did
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 3);
  });
}
