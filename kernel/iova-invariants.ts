/**
 * What iova.c relies on of its tree and never checks, checked by a walk (run after each insert
 * and delete when invariantChecks.on): the in-order walk meets every node once, each range has
 * pfn_lo <= pfn_hi, ranges ascend without overlapping, the anchor is the last node, and both
 * cached nodes are nodes of the tree. O(n) per call: too costly to stay on outside tests.
 */
import { InvariantError } from './assert.js';
import type { IovaNode, RbTree } from './rbtree.js';

/** The parts of an IOVA domain the walk reads. */
export interface IovaTreeView {
  readonly tree: RbTree;
  readonly anchor: IovaNode;
  readonly cachedNode: IovaNode;
  readonly cached32Node: IovaNode;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const range = (n: IovaNode): string => `[${hex(n.pfnLo)}, ${hex(n.pfnHi)}]`;

/** Throws an InvariantError naming the first broken rule. */
export function checkIovaTree(d: IovaTreeView, after: string): void {
  const fail = (what: string): never => {
    throw new InvariantError(`iova tree after ${after}: ${what}`);
  };
  let count = 0;
  let prev: IovaNode | null = null;
  let sawCached = false;
  let sawCached32 = false;
  for (let n = d.tree.first(); n !== null; n = d.tree.next(n)) {
    if (++count > d.tree.size) fail(`the in-order walk meets more than the tree's ${d.tree.size} nodes`);
    if (n.pfnLo > n.pfnHi) fail(`range ${range(n)} has pfn_lo > pfn_hi`);
    if (prev !== null && n.pfnLo <= prev.pfnHi) fail(`ranges ${range(prev)} and ${range(n)} overlap or are out of order`);
    if (n === d.cachedNode) sawCached = true;
    if (n === d.cached32Node) sawCached32 = true;
    prev = n;
  }
  if (count !== d.tree.size) fail(`the in-order walk meets ${count} of the tree's ${d.tree.size} nodes`);
  if (prev !== d.anchor) fail('the anchor is not the last node');
  if (!sawCached) fail(`cached_node ${range(d.cachedNode)} is not in the tree`);
  if (!sawCached32) fail(`cached32_node ${range(d.cached32Node)} is not in the tree`);
}
