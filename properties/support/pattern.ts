/**
 * The self-describing memory pattern and the hex strings step data uses, shared by the legacy,
 * generic and harness suites.
 *
 * This is the one "expected value" the suites compute themselves: by the design (DESIGN.md),
 * every little-endian 64-bit word at physical address p reads 0xA5 << 56 | p until written. It is
 * written out here independently of vtd/memory.ts, which it checks.
 */

/** The untouched pattern bytes of [addr, addr + len) as the lower-case hex a step's data uses. */
export function patternHex(addr: number, len: number): string {
  let out = '';
  for (let i = 0; i < len; i++) {
    const a = addr + i;
    const word = (0xa5n << 56n) | BigInt(a - (a % 8));
    const byte = Number((word >> BigInt(8 * (a % 8))) & 0xffn);
    out += byte.toString(16).padStart(2, '0');
  }
  return out;
}

/** len bytes of value b, as hex. */
export function fillHex(b: number, len: number): string {
  return b.toString(16).padStart(2, '0').repeat(len);
}

/** A number as the "0x..." string scenarios use for addresses. */
export function hx(v: number | bigint): string {
  return `0x${v.toString(16)}`;
}
