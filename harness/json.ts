/** JSON output: bigints as 0x-hex strings, two-space indentation, stable across runs. */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x), 2);
}
