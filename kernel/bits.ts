/**
 * The BigInt/number edge, in one place. IOVAs and DMA handles are 64-bit (57-bit IOVAs, 64-bit
 * masks) and travel as BigInt; page-frame numbers, offsets and sizes stay plain numbers (a pfn
 * of a 64-bit address is at most 2^52, exact in a double). Code converts only through these.
 * Also the kernel's bit helpers (include/asm-generic/bitops) and its errno numbers.
 */
import { PAGE_SHIFT, PAGE_SIZE } from './release.js';

const SHIFT = BigInt(PAGE_SHIFT);
const OFFSET_MASK = BigInt(PAGE_SIZE - 1);

const TWO53 = 2n ** 53n;

/**
 * iova_pfn / PHYS_PFN of a 64-bit address: its 4 KiB page-frame number (a BigInt shift only at
 * or above 2^53, where the double would round; below, a division is cheaper)
 */
export function iovaPfn(addr: bigint): number {
  return addr < TWO53 ? Math.floor(Number(addr) / PAGE_SIZE) : Number(addr >> SHIFT);
}

/** iova_offset / offset_in_page: the address's byte offset in its 4 KiB page */
export function iovaOffset(addr: bigint): number {
  return Number(addr & OFFSET_MASK);
}

/** pfn_to_dma / PFN_PHYS: the first address of page frame `pfn` */
export function pfnAddr(pfn: number): bigint {
  return BigInt(pfn) << SHIFT;
}

/** the start of the address's 4 KiB page (addr & PAGE_MASK) */
export function pageAlignDown(addr: bigint): bigint {
  return addr & ~OFFSET_MASK;
}

/** PAGE_ALIGN: the address rounded up to a 4 KiB boundary */
export function pageAlignUp(addr: bigint): bigint {
  return (addr + OFFSET_MASK) & ~OFFSET_MASK;
}

/** whether an address is 4 KiB aligned (PAGE_ALIGNED) */
export function pageAligned(addr: bigint): boolean {
  return (addr & OFFSET_MASK) === 0n;
}

/** fls(x): the highest set bit, 1-based; 0 for 0 (include/asm-generic/bitops/fls.h) */
export function fls(x: number): number {
  let o = 0;
  while (x >= 1) {
    x = Math.floor(x / 2);
    o++;
  }
  return o;
}

/** __fls(x): the highest set bit, 0-based; undefined in the kernel for 0 (here -1) */
export function __fls(x: bigint): number {
  let i = -1;
  while (x > 0n) {
    x >>= 1n;
    i++;
  }
  return i;
}

/** __ffs(x): the lowest set bit, 0-based; undefined in the kernel for 0 (here -1) */
export function __ffs(x: bigint): number {
  if (x === 0n) return -1;
  let i = 0;
  while (((x >> BigInt(i)) & 1n) === 0n) i++;
  return i;
}

/** include/uapi/asm-generic/errno-base.h: the errors the models return, negated as the kernel does */
export const EIO = 5;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EINVAL = 22;

const ERRNO_NAMES: Readonly<Record<number, string>> = { [EIO]: 'EIO', [ENOMEM]: 'ENOMEM', [EFAULT]: 'EFAULT', [EINVAL]: 'EINVAL' };

/** The kernel's name of a negated errno ("-EINVAL"), for results and messages. */
export function errnoName(ret: number): string {
  const n = ERRNO_NAMES[-ret];
  return n === undefined ? String(ret) : `-${n}`;
}
