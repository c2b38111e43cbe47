/**
 * Caching mode (kernel-semantics 5.6, 9.5.8): with CM = 1 the unit may cache not-present entries,
 * so a not-present → present change needs an invalidation before the device sees it; with CM = 0
 * it does not.
 */
import { describe, expect, it } from 'vitest';
import { PAGE, RW, W, hex, iovaOf, patternBytes, rig, type Rig } from './helpers.js';

const PHYS = 0x3405;
const WORD = '00 50 40 03 00 00 00 a5';

function read8(r: Rig, pfn: number): string {
  const res = r.hw.dmaRead(r.sid, iovaOf(pfn), 8);
  return res.fault === undefined ? hex(res.data) : `fault ${res.fault.reason}`;
}

function write1(r: Rig, pfn: number): string {
  const res = r.hw.dmaWrite(r.sid, iovaOf(pfn), Uint8Array.of(0x5a));
  return res.fault === undefined ? `wrote ${res.written}` : `fault ${res.fault.reason}`;
}

describe('caching mode on', () => {
  it('the unit reports CM (cap bit 7)', () => {
    const r = rig({ cachingMode: true });
    expect(r.hw.cap).toBe(0xd2008c22260286n);
    expect(r.hw.caps.cm).toBe(true);
  });

  it('a new mapping without invalidation faults (read 6, write 5); after a covering PSI it works', () => {
    const r = rig({ cachingMode: true });
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    expect(read8(r, 0x100)).toBe('fault 6');
    expect(write1(r, 0x100)).toBe('fault 5');
    r.prog.flushIotlbPages(r.did, 0x100, 0);
    expect(read8(r, 0x100)).toBe(WORD);
    expect(write1(r, 0x100)).toBe('wrote 1');
    expect(hex(r.hw.memory.read(PHYS * PAGE, 2))).toBe('5a 50');
  });

  it('a PSI whose aligned block covers the page (AM 2 from an unaligned address) is enough', () => {
    const r = rig({ cachingMode: true });
    r.prog.map(r.dom, 0x102, PHYS, 1, RW);
    r.prog.flushIotlbPages(r.did, 0x101, 2);
    expect(read8(r, 0x102)).toBe(WORD);
  });

  it('a PSI whose aligned block misses the page is not (AM 1 at 0x101 covers 0x100..0x101)', () => {
    const r = rig({ cachingMode: true });
    r.prog.map(r.dom, 0x102, PHYS, 1, RW);
    r.prog.flushIotlbPages(r.did, 0x101, 1);
    expect(read8(r, 0x102)).toBe('fault 6');
  });

  it('a PSI of another domain id is not enough; a domain-selective or global flush is', () => {
    const r = rig({ cachingMode: true });
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    r.prog.flushIotlbPages(r.did + 1, 0x100, 0);
    expect(read8(r, 0x100)).toBe('fault 6');
    r.prog.flushIotlbDomain(r.did);
    expect(read8(r, 0x100)).toBe(WORD);

    r.prog.map(r.dom, 0x101, PHYS + 1, 1, RW);
    expect(read8(r, 0x101)).toBe('fault 6');
    r.prog.flushIotlbGlobal();
    expect(read8(r, 0x101)).toBe(hex(patternBytes((PHYS + 1) * PAGE, 8)));
  });

  it('a flush issued before the mapping does not cover it', () => {
    const r = rig({ cachingMode: true });
    r.prog.flushIotlbPages(r.did, 0x100, 0);
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    expect(read8(r, 0x100)).toBe('fault 6');
  });

  it('a permission upgrade (W-only → RW) without invalidation is not seen either', () => {
    const r = rig({ cachingMode: true });
    r.prog.map(r.dom, 0x100, PHYS, 1, W);
    r.prog.flushIotlbPages(r.did, 0x100, 0);
    expect(read8(r, 0x100)).toBe('fault 6');
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    expect(read8(r, 0x100)).toBe('fault 6');
    r.prog.flushIotlbPages(r.did, 0x100, 0);
    expect(read8(r, 0x100)).toBe(WORD);
  });

  it('a context entry written without a context-cache flush faults reason 2; after the flush it works', () => {
    const r = rig({ cachingMode: true }, { flushAttach: false });
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    r.prog.flushIotlbPages(r.did, 0x100, 0);
    expect(read8(r, 0x100)).toBe('fault 2');
    expect(write1(r, 0x100)).toBe('fault 2');
    r.prog.flushContextDevice(r.sid, 0);
    expect(read8(r, 0x100)).toBe(WORD);
  });

  it('a global or domain-selective context flush also covers the new context entry', () => {
    const g = rig({ cachingMode: true }, { flushAttach: false });
    g.prog.map(g.dom, 0x100, PHYS, 1, RW);
    g.prog.flushIotlbDomain(g.did);
    g.prog.flushContextGlobal();
    expect(read8(g, 0x100)).toBe(WORD);

    const d = rig({ cachingMode: true }, { flushAttach: false });
    d.prog.map(d.dom, 0x100, PHYS, 1, RW);
    d.prog.flushIotlbDomain(d.did);
    // ICC | CIRG 2 (domain) | DID of the entry (1)
    d.hw.writeContextCommand(0xc000000000000001n);
    expect(read8(d, 0x100)).toBe(WORD);
  });

  it('a device-selective context flush of another device does not cover this one', () => {
    const r = rig({ cachingMode: true }, { flushAttach: false });
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    r.prog.flushIotlbDomain(r.did);
    r.prog.flushContextDevice(0x18, 0);
    expect(read8(r, 0x100)).toBe('fault 2');
  });
});

describe('caching mode off', () => {
  it('the same mapping sequence works without any invalidation', () => {
    const r = rig({ cachingMode: false });
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    expect(read8(r, 0x100)).toBe(WORD);
    expect(write1(r, 0x100)).toBe('wrote 1');
  });

  it('a context entry written without a context-cache flush is used at once (never cached)', () => {
    const r = rig({ cachingMode: false }, { flushAttach: false });
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    expect(read8(r, 0x100)).toBe(WORD);
  });

  it('a faulting access does not cache the not-present entry: mapping it afterwards is seen at once', () => {
    const r = rig({ cachingMode: false });
    expect(read8(r, 0x100)).toBe('fault 6');
    r.prog.map(r.dom, 0x100, PHYS, 1, RW);
    expect(read8(r, 0x100)).toBe(WORD);
  });
});
