/** JSON output: bigints as 0x-hex strings, two-space indentation (or one line), stable across runs. */
export function stableJson(v: unknown, oneLine = false): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x), oneLine ? undefined : 2);
}
