/**
 * The page-table checks run inside the generic path (6.1): properties/support/broken-tables.ts
 * describes the suite (a root entry broken between two steps stops the next map or unmap).
 */
import { describeBrokenRootEntry } from '../support/broken-tables.js';
import { run, scenarioJson } from './helpers.js';

describeBrokenRootEntry('6.1', (steps, after) => run(scenarioJson({ steps }), {}, after));
