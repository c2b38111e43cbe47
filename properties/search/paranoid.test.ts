/**
 * --paranoid also switches on the model's costly invariant checks (kernel/assert.ts
 * invariantChecks): a paranoid `scenario` run and a paranoid search leave them on, the same runs
 * without --paranoid leave them as they were (off here). The switch is set off before each run
 * and put back as the suite had it after.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { invariantChecks } from '../../kernel/assert.js';
import { cli, TmpDirs } from './helpers.js';

const tmp = new TmpDirs();
afterAll(() => tmp.dispose());

const FIXTURE = new URL('../fixtures/exhaust-untrusted-sg-unwind.scenario.json', import.meta.url).pathname;

describe('--paranoid turns on the invariant checks', () => {
  const was = invariantChecks.on;
  beforeEach(() => {
    invariantChecks.on = false;
  });
  afterEach(() => {
    invariantChecks.on = was;
  });

  it('dmadiff scenario --paranoid: on', async () => {
    const r = await cli(['scenario', FIXTURE, '--json', '--paranoid']);
    expect(r.err).toEqual([]);
    expect(invariantChecks.on).toBe(true);
  });

  it('dmadiff scenario without --paranoid: off', async () => {
    const r = await cli(['scenario', FIXTURE, '--json']);
    expect(r.err).toEqual([]);
    expect(invariantChecks.on).toBe(false);
  });

  it('dmadiff gate --paranoid: on', async () => {
    const r = await cli(['gate', '--corpus', join(tmp.fresh('paranoid'), 'corpus'), '--runs', '2', '--platforms', 'qemu-strict', '--allow-unhit', '--paranoid']);
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(invariantChecks.on).toBe(true);
  });

  it('dmadiff gate without --paranoid: off', async () => {
    const r = await cli(['gate', '--corpus', join(tmp.fresh('paranoid'), 'corpus'), '--runs', '2', '--platforms', 'qemu-strict', '--allow-unhit']);
    expect(r.code, r.out.join('\n')).toBe(0);
    expect(invariantChecks.on).toBe(false);
  });
});
