/**
 * Every test file runs with the costly invariant checks on (kernel/assert.ts): the IOVA tree
 * walked after each insert and delete, the touched part of a page table after each map and
 * unmap. The CLI runs without them. (The suites that prove each check fires rely on this.)
 */
import { setInvariantChecks } from '../kernel/assert.js';

setInvariantChecks(true);
