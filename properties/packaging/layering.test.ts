/**
 * The house's layering (README, Layout): each folder imports only the folders below it, as in
 * drivers/iommu/ -- the hardware knows no driver, the two releases' DMA paths never import each
 * other, only the harness knows both, and the generic layer reaches the VT-d driver only through
 * the iommu_ops-like interface. Read from the sources' import lines.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = normalize(join(dirname(new URL(import.meta.url).pathname), '..', '..'));

/** folder -> the folders its modules may import (besides their own) */
const MAY_IMPORT: Record<string, readonly string[]> = {
  vtd: [],
  kernel: ['vtd'],
  'intel-common': ['vtd', 'kernel'],
  platform: ['vtd', 'kernel', 'intel-common'],
  'legacy-intel': ['vtd', 'kernel', 'intel-common', 'platform'],
  'dma-iommu': ['vtd', 'kernel', 'intel-common', 'platform'],
  testbench: ['vtd'],
  harness: ['vtd', 'kernel', 'intel-common', 'platform', 'legacy-intel', 'dma-iommu', 'testbench', 'reports'],
  reports: ['vtd', 'kernel', 'intel-common', 'platform', 'legacy-intel', 'dma-iommu', 'harness'],
};

/** Every runtime source (no tests) under a folder, relative to the repository. */
function sources(folder: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(REPO, rel), { withFileTypes: true })) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(child);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.test.ts')) out.push(child);
    }
  };
  walk(folder);
  return out;
}

/** The repository-relative .ts files a source imports (relative specifiers only). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(REPO, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
    out.push(relative(REPO, join(REPO, dirname(file), `${m[1]!}.ts`)).split(sep).join('/'));
  }
  return out;
}

const top = (f: string): string => f.split('/')[0]!;

/** The imports of `graph` (file -> files it imports) that cross the table's rule. */
function violations(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const bad: string[] = [];
  for (const [f, deps] of graph) {
    const allowed = MAY_IMPORT[top(f)];
    for (const dep of deps) if (top(dep) !== top(f) && (allowed === undefined || !allowed.includes(top(dep)))) bad.push(`${f} -> ${dep}`);
  }
  return bad;
}

const graph = new Map(Object.keys(MAY_IMPORT).flatMap((folder) => sources(folder).map((f) => [f, importsOf(f)] as const)));

describe('layering', () => {
  it('the folders of the table are all there, and nothing else holds runtime code', () => {
    const dirs = readdirSync(REPO, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !['node_modules', 'dist', 'properties', 'bench', 'docs', 'bin'].includes(e.name) && !e.name.startsWith('.'))
      .map((e) => e.name)
      .filter((d) => sources(d).length > 0);
    expect(dirs.sort()).toEqual(Object.keys(MAY_IMPORT).sort());
    expect(graph.size).toBeGreaterThan(100);
  });

  it('every folder imports only the folders its row allows', () => {
    expect(violations(graph)).toEqual([]);
  });

  it('the rule catches an import across the two paths, and hardware importing a driver', () => {
    const broken = new Map([
      ['legacy-intel/dma-ops.ts', ['kernel/iova.ts', 'dma-iommu/iommu.ts']],
      ['vtd/walk.ts', ['vtd/regs.ts', 'intel-common/dmar.ts']],
    ]);
    expect(violations(broken)).toEqual(['legacy-intel/dma-ops.ts -> dma-iommu/iommu.ts', 'vtd/walk.ts -> intel-common/dmar.ts']);
  });

  it('the generic layer reaches the VT-d driver only through the iommu_ops interface', () => {
    const generic = sources('dma-iommu').filter((f) => !/intel-iommu|dma-iommu-path/.test(f));
    expect(generic.length).toBeGreaterThan(1);
    const bad = generic.flatMap((f) => importsOf(f).filter((d) => /dma-iommu\/intel-iommu/.test(d)).map((d) => `${f} -> ${d}`));
    expect(bad).toEqual([]);
  });
});
