/** flush_queue_timeout: the flush queue's timer fires (fq_flush_timeout) on every CPU. */
import { compareOutcome } from '../../check/step-compare.js';
import type { OpDescription } from './op.js';

export const flushQueueTimeout: OpDescription<'flush_queue_timeout'> = {
  op: 'flush_queue_timeout',
  fields: {},
  generatedBy: ['fq_timeout'],
  parse: () => ({ op: 'flush_queue_timeout' }),
  run: (r) => {
    r.model.machine.passFlushQueueTimeout();
    return { ok: true };
  },
  describe: () => 'flush_queue_timeout',
  compare: compareOutcome,
};
