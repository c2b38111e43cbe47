/**
 * The two kernel releases modelled. Where kernel/ infrastructure changed between them, the rule
 * of each is selected by this parameter -- one piece of code, never two copies.
 */
export type Release = '5.10' | '6.1';

export const RELEASES: readonly Release[] = ['5.10', '6.1'];

/** The exact kernels the two models follow (Debian's builds the oracle runs were recorded on). */
export const MODELLED_KERNELS = { legacy: '5.10.262', generic: '6.1.192' } as const;

/** 4 KiB pages: PAGE_SIZE, VTD_PAGE_SIZE and the IOVA granule are all 4096 on x86-64. */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;

/** order_base_2: ceil(log2(n)), 0 for n <= 1 */
export function orderBase2(n: number): number {
  let o = 0;
  while (2 ** o < n) o++;
  return o;
}

/** ALIGN(x, a) for a power-of-two a: PAGE_ALIGN, iova_align, the bounce paths' ALIGN(size, VTD_PAGE_SIZE) */
export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** roundup_pow_of_two, exact for any safe integer >= 1 */
export function roundupPowOfTwo(n: number): number {
  return 2 ** orderBase2(n);
}
