/**
 * The fidelity suites' shared part: a path's step results against every expectation the real
 * recordings hold for it, compared as shared/oracle/check.py compares them (0x-strings as
 * numbers, lists of equal length elementwise, objects as subsets), one test per step; and the
 * model's trace of the steps strict-main's recorded trace covers.
 */
import { describe, expect, it } from 'vitest';
import type { PathName } from '../../harness/run/paths.js';
import { FIXTURE_NAMES, loadFixture, subsetMismatch, type TraceLine } from './oracle.js';
import { runPath, type Run } from './scenario.js';

/**
 * One describe per recording ("<file>: <path> steps"): the recording has expectations for the
 * path and the model ran every step, then one test per expected step. `pathWords` names the path
 * in the first test's title ("the legacy path").
 */
export function describeRecordedSteps(path: PathName, pathWords: string): void {
  for (const name of FIXTURE_NAMES) {
    const fx = loadFixture(name);
    const exps = fx.expect[path] ?? [];
    const r = runPath(path, fx.scenario);

    describe(`${name}.json: ${path} steps`, () => {
      it(`the recording has expectations for ${pathWords} and the model ran every step`, () => {
        expect(exps.length).toBeGreaterThan(0);
        expect(r.results.length).toBe(r.scenario.steps.length);
      });

      for (const e of exps) {
        const want = Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'step'));
        it(`step ${e.step} (${r.scenario.steps[e.step]?.op ?? '?'})`, () => {
          const got = r.results[e.step];
          const diff = subsetMismatch(want, got);
          expect(diff, `step ${e.step}: want ${JSON.stringify(want)}\n got ${JSON.stringify(got)}`).toBeNull();
        });
      }
    });
  }
}

export interface RecordedTrace {
  /** the recorded window of steps, [from, to) */
  from: number;
  to: number;
  /** the kernel's events for the path, as recorded */
  want: TraceLine[];
  /** the model's events of the steps in the window */
  got: TraceLine[];
  /** the model's run of strict-main */
  r: Run;
}

/** strict-main run on `path`, with its recorded trace for that path and the model's over the same steps. */
export function recordedTrace(path: PathName): RecordedTrace {
  const fx = loadFixture('strict-main');
  const trace = fx.trace!;
  const [from, to] = trace.coversSteps;
  const want = trace.events[path]!;
  const r = runPath(path, fx.scenario);
  const got = r.model.machine.trace.events.filter((e) => e.step >= from && e.step < to).map((e) => ({ event: e.event, text: e.text }));
  return { from, to, want, got, r };
}
