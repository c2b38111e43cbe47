/**
 * The exit codes of every dmadiff command, and the error that ends a command with exit 2.
 *
 * 0 pass; 1 a divergence outside the allowlist; 2 bad usage or bad input (a malformed flag or
 * file, a corpus entry that cannot be read unless --ignore-corrupt, a shard set that is not one
 * search); 3 internal error; 4 inconclusive (a branch never reached, a partial merge); 5
 * interrupted by SIGINT or SIGTERM before the search finished.
 */
export const EXIT_PASS = 0;
export const EXIT_FAIL = 1;
export const EXIT_BAD_INPUT = 2;
export const EXIT_INTERNAL = 3;
export const EXIT_INCONCLUSIVE = 4;
export const EXIT_INTERRUPTED = 5;

/** A command that cannot run as asked: one line naming the flag or file (exit 2). */
export class CommandError extends Error {}
