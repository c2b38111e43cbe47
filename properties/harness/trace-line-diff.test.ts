/**
 * The line diff the fidelity tests report a trace mismatch with (properties/support/oracle.ts):
 * nothing for equal traces, and one message per line that really differs, the traces aligned.
 */
import { describe, expect, it } from 'vitest';
import { traceLineDiffs, type TraceLine } from '../support/oracle.js';

const line = (k: number): TraceLine => ({ event: 'map_single', text: `dev=0000:00:02.0 dev_addr=0x${(0xfffff000 - k * 0x1000).toString(16)} phys_addr=0x1000 size=4096` });
const trace = (n: number): TraceLine[] => Array.from({ length: n }, (_, k) => line(k));

describe('traceLineDiffs', () => {
  it('equal traces: no message', () => {
    expect(traceLineDiffs(trace(40), trace(40))).toEqual([]);
    expect(traceLineDiffs([], [])).toEqual([]);
  });

  it('one line changed: one message, both lines', () => {
    const got = trace(40);
    got[7] = { ...line(7), text: 'dev=0000:00:02.0 dev_addr=0xdead000 phys_addr=0x1000 size=4096' };
    const bad = traceLineDiffs(trace(40), got);
    expect(bad).toHaveLength(1);
    expect(bad[0]).toBe(`line 7: want map_single: ${line(7).text}\n          got  map_single: dev=0000:00:02.0 dev_addr=0xdead000 phys_addr=0x1000 size=4096`);
  });

  it('an event the model left out, or one it added: one message, not one for every line after it', () => {
    const missing = trace(40).filter((_, k) => k !== 3);
    expect(traceLineDiffs(trace(40), missing)).toEqual([`line 3: want map_single: ${line(3).text}\n          got  (none)`]);
    const extra = [...trace(10), { event: 'unmap_single', text: 'dev=0000:00:02.0 dev_addr=0x1000 size=4096' }, ...trace(40).slice(10)];
    expect(traceLineDiffs(trace(40), extra)).toEqual(['line 10: want (none)\n          got  unmap_single: dev=0000:00:02.0 dev_addr=0x1000 size=4096']);
  });

  it('a trace that ends early: each missing line once, numbered in both traces', () => {
    const bad = traceLineDiffs(trace(5), trace(3));
    expect(bad).toEqual([`line 3: want map_single: ${line(3).text}\n          got  (none)`, `line 4 (got line 3): want map_single: ${line(4).text}\n          got  (none)`]);
  });

  it('the event counts as much as the text', () => {
    const got = trace(4);
    got[2] = { ...line(2), event: 'bounce_map_single' };
    expect(traceLineDiffs(trace(4), got)).toHaveLength(1);
  });
});
