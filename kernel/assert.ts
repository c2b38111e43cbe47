/**
 * Run-time invariants, as the kernel states them with BUG_ON/WARN_ON: a broken invariant is a bug
 * of dmadiff's model (never of the scenario), so it throws an InvariantError the CLI reports as
 * an internal error (exit 3). The cheap ones always run; `invariantChecks` turns on the ones that
 * cost a walk of a structure (on in the test suite, see vitest's setup). The search leaves them
 * off: some check what a path writes, and a path's bug is the gate's to report as a divergence.
 */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

/** BUG_ON(cond): the model reached a state its kernel counterpart forbids. */
export function BUG_ON(cond: boolean, what: string): void {
  if (cond) throw new InvariantError(`BUG: ${what}`);
}

/** BUG(): unconditional, for a branch the kernel marks unreachable (narrows like a throw). */
export function BUG(what: string): never {
  throw new InvariantError(`BUG: ${what}`);
}

/**
 * A value the caller knows is there (a map entry of a key it put, a list's existing element):
 * returned, or an InvariantError naming what was expected.
 */
export function must<T>(v: T | null | undefined, what: string): T {
  if (v === undefined || v === null) throw new InvariantError(`expected ${what}`);
  return v;
}

/** Whether the costly invariant checks run (walks of trees and tables after each change). */
export const invariantChecks = { on: false };

/**
 * Turn the costly checks on or off for everything that runs after: the test suite's setup turns
 * them on; the CLI leaves them off.
 */
export function setInvariantChecks(on: boolean): void {
  invariantChecks.on = on;
}
