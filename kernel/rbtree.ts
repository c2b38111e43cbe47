/**
 * A red-black tree of IOVA ranges ordered by pfn_lo, with parent pointers.
 *
 * Written here rather than taken from npm because iova.c works on *nodes*: it keeps cached node
 * pointers across calls, walks rb_prev/rb_next from them, and widens a node's pfn_lo in place
 * (reserve_iova). The well-kept npm trees (js-sdsl, bintrees, functional-red-black-tree) expose
 * keys and iterators that are invalidated or copied on change, so they would need a node layer on
 * top anyway. Insert, delete, predecessor, successor and search are O(log n) (CLRS chapter 13).
 */

export interface IovaNode {
  pfnLo: number;
  pfnHi: number;
  left: IovaNode | null;
  right: IovaNode | null;
  parent: IovaNode | null;
  red: boolean;
  /** made by reserve_iova: never handed out, never freed by a DMA unmap */
  reserved: boolean;
}

export function newNode(pfnLo: number, pfnHi: number, reserved = false): IovaNode {
  return { pfnLo, pfnHi, left: null, right: null, parent: null, red: true, reserved };
}

export class RbTree {
  root: IovaNode | null = null;
  size = 0;

  first(): IovaNode | null {
    let n = this.root;
    if (n === null) return null;
    while (n.left !== null) n = n.left;
    return n;
  }

  last(): IovaNode | null {
    let n = this.root;
    if (n === null) return null;
    while (n.right !== null) n = n.right;
    return n;
  }

  /** rb_next */
  next(n: IovaNode): IovaNode | null {
    if (n.right !== null) {
      let m = n.right;
      while (m.left !== null) m = m.left;
      return m;
    }
    let c = n;
    let p = n.parent;
    while (p !== null && c === p.right) {
      c = p;
      p = p.parent;
    }
    return p;
  }

  /** rb_prev */
  prev(n: IovaNode): IovaNode | null {
    if (n.left !== null) {
      let m = n.left;
      while (m.right !== null) m = m.right;
      return m;
    }
    let c = n;
    let p = n.parent;
    while (p !== null && c === p.left) {
      c = p;
      p = p.parent;
    }
    return p;
  }

  /** The node whose [pfnLo, pfnHi] contains pfn (private_find_iova). */
  findContaining(pfn: number): IovaNode | null {
    let n = this.root;
    while (n !== null) {
      if (pfn < n.pfnLo) n = n.left;
      else if (pfn > n.pfnHi) n = n.right;
      else return n;
    }
    return null;
  }

  /** The lowest node with pfnHi >= pfn (ranges do not overlap, so pfnHi is ordered like pfnLo). */
  lowestWithHiAtLeast(pfn: number): IovaNode | null {
    let n = this.root;
    let best: IovaNode | null = null;
    while (n !== null) {
      if (n.pfnHi >= pfn) {
        best = n;
        n = n.left;
      } else {
        n = n.right;
      }
    }
    return best;
  }

  /**
   * Insert ordered by pfnLo. An equal key is iova_insert_rbtree's WARN_ON(1): the node is left
   * out and the tree unchanged, as the kernel returns (it cannot happen: allocation and
   * reservation never start two ranges at one pfn).
   */
  insert(z: IovaNode): void {
    let y: IovaNode | null = null;
    let x = this.root;
    while (x !== null) {
      y = x;
      if (z.pfnLo === x.pfnLo) return;
      x = z.pfnLo < x.pfnLo ? x.left : x.right;
    }
    z.parent = y;
    z.left = null;
    z.right = null;
    z.red = true;
    if (y === null) this.root = z;
    else if (z.pfnLo < y.pfnLo) y.left = z;
    else y.right = z;
    this.size++;
    this.insertFixup(z);
  }

  private rotateLeft(x: IovaNode): void {
    const y = x.right!;
    x.right = y.left;
    if (y.left !== null) y.left.parent = x;
    y.parent = x.parent;
    if (x.parent === null) this.root = y;
    else if (x === x.parent.left) x.parent.left = y;
    else x.parent.right = y;
    y.left = x;
    x.parent = y;
  }

  private rotateRight(x: IovaNode): void {
    const y = x.left!;
    x.left = y.right;
    if (y.right !== null) y.right.parent = x;
    y.parent = x.parent;
    if (x.parent === null) this.root = y;
    else if (x === x.parent.right) x.parent.right = y;
    else x.parent.left = y;
    y.right = x;
    x.parent = y;
  }

  private insertFixup(z: IovaNode): void {
    while (z.parent !== null && z.parent.red) {
      const p = z.parent;
      const g = p.parent!;
      if (p === g.left) {
        const u = g.right;
        if (u !== null && u.red) {
          p.red = false;
          u.red = false;
          g.red = true;
          z = g;
        } else {
          if (z === p.right) {
            z = p;
            this.rotateLeft(z);
          }
          z.parent!.red = false;
          g.red = true;
          this.rotateRight(g);
        }
      } else {
        const u = g.left;
        if (u !== null && u.red) {
          p.red = false;
          u.red = false;
          g.red = true;
          z = g;
        } else {
          if (z === p.left) {
            z = p;
            this.rotateRight(z);
          }
          z.parent!.red = false;
          g.red = true;
          this.rotateLeft(g);
        }
      }
    }
    this.root!.red = false;
  }

  private transplant(u: IovaNode, v: IovaNode | null): void {
    if (u.parent === null) this.root = v;
    else if (u === u.parent.left) u.parent.left = v;
    else u.parent.right = v;
    if (v !== null) v.parent = u.parent;
  }

  /** rb_erase */
  remove(z: IovaNode): void {
    let y = z;
    let yWasRed = y.red;
    let x: IovaNode | null;
    let xParent: IovaNode | null;
    if (z.left === null) {
      x = z.right;
      xParent = z.parent;
      this.transplant(z, z.right);
    } else if (z.right === null) {
      x = z.left;
      xParent = z.parent;
      this.transplant(z, z.left);
    } else {
      y = z.right;
      while (y.left !== null) y = y.left;
      yWasRed = y.red;
      x = y.right;
      if (y.parent === z) {
        xParent = y;
      } else {
        xParent = y.parent;
        this.transplant(y, y.right);
        y.right = z.right;
        y.right.parent = y;
      }
      this.transplant(z, y);
      y.left = z.left;
      y.left.parent = y;
      y.red = z.red;
    }
    this.size--;
    z.left = z.right = z.parent = null;
    if (!yWasRed) this.deleteFixup(x, xParent);
  }

  private deleteFixup(x: IovaNode | null, parent: IovaNode | null): void {
    while (x !== this.root && (x === null || !x.red)) {
      if (parent === null) break;
      if (x === parent.left) {
        let w = parent.right!;
        if (w.red) {
          w.red = false;
          parent.red = true;
          this.rotateLeft(parent);
          w = parent.right!;
        }
        if ((w.left === null || !w.left.red) && (w.right === null || !w.right.red)) {
          w.red = true;
          x = parent;
          parent = x.parent;
        } else {
          if (w.right === null || !w.right.red) {
            if (w.left !== null) w.left.red = false;
            w.red = true;
            this.rotateRight(w);
            w = parent.right!;
          }
          w.red = parent.red;
          parent.red = false;
          if (w.right !== null) w.right.red = false;
          this.rotateLeft(parent);
          x = this.root;
          parent = null;
        }
      } else {
        let w = parent.left!;
        if (w.red) {
          w.red = false;
          parent.red = true;
          this.rotateRight(parent);
          w = parent.left!;
        }
        if ((w.left === null || !w.left.red) && (w.right === null || !w.right.red)) {
          w.red = true;
          x = parent;
          parent = x.parent;
        } else {
          if (w.left === null || !w.left.red) {
            if (w.right !== null) w.right.red = false;
            w.red = true;
            this.rotateLeft(w);
            w = parent.left!;
          }
          w.red = parent.red;
          parent.red = false;
          if (w.left !== null) w.left.red = false;
          this.rotateRight(parent);
          x = this.root;
          parent = null;
        }
      }
    }
    if (x !== null) x.red = false;
  }

  /** In-order walk (for tests and leak reports). */
  *inOrder(): IterableIterator<IovaNode> {
    for (let n = this.first(); n !== null; n = this.next(n)) yield n;
  }

  /** Check the red-black invariants; returns the black height (tests only). */
  verify(): number {
    const check = (n: IovaNode | null, lo: number, hi: number): number => {
      if (n === null) return 1;
      if (n.pfnLo < lo || n.pfnLo > hi) throw new Error('rbtree order violated');
      if (n.red && ((n.left?.red ?? false) || (n.right?.red ?? false))) throw new Error('red node with red child');
      if (n.left !== null && n.left.parent !== n) throw new Error('bad parent link');
      if (n.right !== null && n.right.parent !== n) throw new Error('bad parent link');
      const a = check(n.left, lo, n.pfnLo);
      const b = check(n.right, n.pfnLo, hi);
      if (a !== b) throw new Error('black height differs');
      return a + (n.red ? 0 : 1);
    };
    if (this.root?.red) throw new Error('red root');
    return check(this.root, -Infinity, Infinity);
  }
}
