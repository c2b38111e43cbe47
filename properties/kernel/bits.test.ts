/**
 * kernel/bits.ts: the one BigInt/number edge. Expectations are literals worked out by hand,
 * at the edges where a double would round (2^53) and at 57-bit IOVAs.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, EIO, ENOMEM, __ffs, __fls, errnoName, fls, iovaOffset, iovaPfn, pageAlignDown, pageAlignUp, pageAligned, pfnAddr } from '../../kernel/bits.js';

describe('kernel/bits.ts', () => {
  it('iovaPfn and iovaOffset split an address on both sides of 2^53 and at 57 bits', () => {
    expect(iovaPfn(0x1234_5678n)).toBe(0x12345);
    expect(iovaOffset(0x1234_5678n)).toBe(0x678);
    // 2^53 - 1: the last exact double; its pfn 2^41 - 1
    expect(iovaPfn(2n ** 53n - 1n)).toBe(2 ** 41 - 1);
    // 2^53 + 4095 is not a double (it would round to 2^53 + 4096): its pfn must still be 2^41
    expect(iovaPfn(2n ** 53n + 4095n)).toBe(2 ** 41);
    expect(iovaOffset(2n ** 53n + 4095n)).toBe(4095);
    // the last byte of a 57-bit space, and of a 64-bit one
    expect(iovaPfn(2n ** 57n - 1n)).toBe(2 ** 45 - 1);
    expect(iovaPfn(2n ** 64n - 1n)).toBe(2 ** 52 - 1);
    expect(iovaOffset(2n ** 64n - 1n)).toBe(0xfff);
  });

  it('pfnAddr is iovaPfn undone, exactly, to 2^52 frames', () => {
    expect(pfnAddr(0x12345)).toBe(0x1234_5000n);
    expect(pfnAddr(2 ** 52 - 1)).toBe(2n ** 64n - 4096n);
    expect(iovaPfn(pfnAddr(2 ** 45 - 7))).toBe(2 ** 45 - 7);
  });

  it('page alignment down, up and the test', () => {
    expect(pageAlignDown(0x1fffn)).toBe(0x1000n);
    expect(pageAlignUp(0x1001n)).toBe(0x2000n);
    expect(pageAlignUp(0x2000n)).toBe(0x2000n);
    expect(pageAlignUp(2n ** 57n - 1n)).toBe(2n ** 57n);
    expect(pageAligned(0x3000n)).toBe(true);
    expect(pageAligned(0x3008n)).toBe(false);
  });

  it('fls is 1-based, __fls and __ffs 0-based, as the kernel names them', () => {
    expect([fls(0), fls(1), fls(2), fls(3), fls(0x80000000), fls(2 ** 40)]).toEqual([0, 1, 2, 2, 32, 41]);
    expect([__fls(1n), __fls(0x1000n), __fls(0x1fffn), __fls(2n ** 63n)]).toEqual([0, 12, 12, 63]);
    expect([__ffs(1n), __ffs(0x1000n), __ffs(0x3000n), __ffs(2n ** 63n)]).toEqual([0, 12, 12, 63]);
  });

  it('errno values and names are errno-base.h', () => {
    expect([EIO, ENOMEM, EINVAL]).toEqual([5, 12, 22]);
    expect(errnoName(-22)).toBe('-EINVAL');
    expect(errnoName(-5)).toBe('-EIO');
    expect(errnoName(-99)).toBe('-99');
  });
});
