/**
 * Every test file runs with the costly invariant checks on (kernel/assert.ts): the IOVA tree
 * walked after each insert and delete, the touched part of a page table after each map and
 * unmap. The CLI runs without them. DMADIFF_INVARIANT_CHECKS=off runs the suite without them
 * too, to measure what they cost.
 */
import { setInvariantChecks } from '../kernel/assert.js';

setInvariantChecks(process.env['DMADIFF_INVARIANT_CHECKS'] !== 'off');
