/**
 * Bad input, the command line's own usage errors: a missing file, an unknown flag or command, no
 * command at all -- exit 2 and one line on stderr.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { HAND } from './bad-input-bases.js';
import { TmpFiles, cli } from './helpers.js';

const tmp = new TmpFiles();
afterAll(() => tmp.dispose());

describe('usage errors of the command line', () => {
  it('a missing file: exit 2, one line naming the file', async () => {
    const file = tmp.missing();
    const r = await cli(['scenario', file]);
    expect(r.code).toBe(2);
    expect(r.out.filter((l) => l !== '')).toEqual([]);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
    expect(r.err[0]).toContain(file);
  });

  it('an unknown flag: exit 2, one line naming it', async () => {
    const file = tmp.write(HAND);
    for (const argv of [['scenario', file, '--bogus'], ['--bogus'], ['scenario', '--frobnicate', file]]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toHaveLength(1);
      expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
      expect(r.err[0]).toMatch(/--bogus|--frobnicate/);
    }
  });

  it('an unknown command, or scenario without its file: exit 2, one line', async () => {
    for (const argv of [['frobnicate'], ['scenario']]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toHaveLength(1);
      expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
    }
  });

  it('no command at all is a usage error too: exit 2 and one line on stderr, not a silent exit 0', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
  });

  it('nothing but the option terminator ("--") is no command either: exit 2 and one line', async () => {
    const r = await cli(['--']);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]!.startsWith('dmadiff: ')).toBe(true);
  });
});
