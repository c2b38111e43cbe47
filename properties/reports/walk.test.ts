/**
 * reports/walk.ts: the page walk of a divergence report, on both paths' real machines. Expected
 * values are derived by hand from the VT-d layout (root entry at RTA + bus * 16, context entry at
 * CTP + devfn * 16, 9 index bits per level above the 12-bit page offset, AW = (width - 30) / 9,
 * fault reason 6 "PTE Read access is not set" for a read through a not-present PTE).
 */
import { describe, expect, it } from 'vitest';
import type { DmaPath } from '../../platform/dma-api.js';
import { PathRunner } from '../../harness/run/path-runner.js';
import { createPath, type PathName } from '../../harness/run/paths.js';
import { parseScenario } from '../../harness/workload/validation.js';
import { walkIova } from '../../reports/walk.js';
import type { Walk } from '../../reports/types.js';

const PATHS: readonly PathName[] = ['legacy-intel', 'dma-iommu'];
/** 00:04.0: bus 0, devfn 4 << 3 = 0x20 */
const DEVFN = 0x20;
/**
 * Its domain id: groups are probed in bus order with q35's own functions, whose default domains
 * take 2 (00:00.0) and 3 (00:01.0) as on the recorded machine (platform/machine.ts Q35_BUILTIN_GROUPS),
 * so the nvme at 00:04.0 gets 4.
 */
const DID = 4;

interface Run {
  path: DmaPath;
  runner: PathRunner;
}

function run(name: PathName, steps: unknown[], platform: Record<string, unknown> = { agaw: 48, strict: true }): Run {
  const s = parseScenario({
    format: 'dmadiff-scenario/1',
    platform: { cpus: 1, ...platform },
    devices: [{ id: 'nvme', bdf: '00:04.0', dmaMask: 64 }],
    reserved: [{ start: '0xfee00000', end: '0xfeefffff' }],
    steps,
  });
  const path = createPath(name, s);
  const runner = new PathRunner(path, s);
  s.steps.forEach((st, i) => runner.run(i, st));
  return { path, runner };
}

function walkOf(r: Run, map: string, name: PathName, offset = 0n): Walk {
  const m = r.runner.mappings.get(map)!;
  expect(m.ok).toBe(true);
  return walkIova(r.path, m.dev, m.dma + offset, `${map} +${offset}`, name);
}

const mapBidi = { op: 'map_page', dev: 'nvme', phys: '0x1234000', size: 4096, dir: 'bidirectional', as: 'm1' };
const mapToDev = { op: 'map_page', dev: 'nvme', phys: '0x5678000', size: 4096, dir: 'to_device', as: 'm2' };

/** The page-table entry addresses a walk must visit, computed from the raw tables by hand. */
function expectedPteAddrs(r: Run, slpt: bigint, iova: bigint, levels: number): string[] {
  const out: string[] = [];
  let table = slpt;
  for (let level = levels; level >= 1; level--) {
    const index = (iova >> BigInt(12 + 9 * (level - 1))) & 511n;
    const addr = table + index * 8n;
    out.push(`0x${addr.toString(16)}`);
    table = r.path.machine.memory.readU64(Number(addr)) & 0x000f_ffff_ffff_f000n;
  }
  return out;
}

describe.each(PATHS)('walkIova on %s', (name) => {
  it('walks a bidirectional 4 KiB mapping through root, context and 4 levels to R W at the mapped page', () => {
    const r = run(name, [mapBidi]);
    const m = r.runner.mappings.get('m1')!;
    const w = walkOf(r, 'm1', name);
    const mem = r.path.machine.memory;
    expect(w.path).toBe(name);
    expect(w.device).toBe('0000:00:04.0');
    expect(w.bdf).toBe('00:04.0');
    expect(w.iova).toBe(`0x${m.dma.toString(16)}`);
    expect(w.why).toBe('m1 +0');
    expect(w.entries.map((e) => e.level)).toEqual(['root', 'context', 4, 3, 2, 1]);

    const rta = r.path.machine.hw.rootTableAddress;
    const rootLow = mem.readU64(rta);
    const ctp = rootLow & 0x000f_ffff_ffff_f000n;
    const root = w.entries[0]!;
    expect(root.addr).toBe(`0x${rta.toString(16)}`);
    expect(root.value).toBe(`0x${rootLow.toString(16).padStart(16, '0')}`);
    expect(root.bits).toEqual(['P', `CTP=0x${ctp.toString(16)}`]);

    const ctxAddr = ctp + BigInt(DEVFN * 16);
    const ctxLow = mem.readU64(Number(ctxAddr));
    const ctxHigh = mem.readU64(Number(ctxAddr) + 8);
    const slpt = ctxLow & 0x000f_ffff_ffff_f000n;
    expect(slpt).toBe(BigInt(r.path.domainPgtable(m.dev).pgdPfn) * 4096n);
    expect((ctxHigh >> 8n) & 0xffffn).toBe(BigInt(DID));
    const ctx = w.entries[1]!;
    expect(ctx.addr).toBe(`0x${ctxAddr.toString(16)}`);
    expect(ctx.value).toBe(`0x${ctxHigh.toString(16).padStart(16, '0')}:0x${ctxLow.toString(16).padStart(16, '0')}`);
    expect(ctx.bits).toEqual(['P', 'TT=0', `SLPTPTR=0x${slpt.toString(16)}`, 'AW=2', `DID=${DID}`]);

    expect(w.entries.slice(2).map((e) => e.addr)).toEqual(expectedPteAddrs(r, slpt, m.dma, 4));
    for (const e of w.entries.slice(2, 5)) {
      expect(e.bits).toContain('R');
      expect(e.bits).toContain('W');
      expect(e.bits).not.toContain('SP');
    }
    const leaf = w.entries[5]!;
    expect(leaf.bits.filter((b) => b === 'R' || b === 'W')).toEqual(['R', 'W']);
    expect(leaf.bits).toContain('ADDR=0x1234000');
    expect(leaf.bits).not.toContain('SP');
    expect(BigInt(leaf.value) & 0x000f_ffff_ffff_f000n).toBe(0x1234000n);
    expect(w.result).toBe('phys 0x1234000 R W');
    expect(walkOf(r, 'm1', name, 0x123n).result).toBe('phys 0x1234123 R W');
  });

  it('a to_device mapping grants R only, in the leaf and in the result', () => {
    const r = run(name, [mapToDev]);
    const w = walkOf(r, 'm2', name, 0x10n);
    const leaf = w.entries[w.entries.length - 1]!;
    expect(leaf.level).toBe(1);
    expect(leaf.bits).toContain('R');
    expect(leaf.bits).not.toContain('W');
    expect(leaf.bits).toContain('ADDR=0x5678000');
    expect(w.result).toBe('phys 0x5678010 R');
  });

  it('with a 57-bit AGAW the walk has 5 levels and the context AW is 3', () => {
    const r = run(name, [mapBidi], { agaw: 57, strict: true });
    const w = walkOf(r, 'm1', name);
    expect(w.entries.map((e) => e.level)).toEqual(['root', 'context', 5, 4, 3, 2, 1]);
    expect(w.entries[1]!.bits).toContain('AW=3');
    expect(w.entries[1]!.bits).toContain(`DID=${DID}`);
    expect(w.result).toBe('phys 0x1234000 R W');
  });

  it('after a strict unmap the walk ends in a not-present PTE and the read faults with reason 6', () => {
    const r = run(name, [mapBidi, { op: 'dma_read', map: 'm1', offset: 0, len: 8 }, { op: 'unmap', map: 'm1' }]);
    const w = walkOf(r, 'm1', name);
    const last = w.entries[w.entries.length - 1]!;
    expect(last.level).toBe(1); // a 4 KiB unmap clears the leaf and keeps its table
    expect(last.bits).not.toContain('R');
    expect(last.bits).not.toContain('W');
    expect(w.result).toBe(`fault 0x06 (PTE Read access is not set): not present at level ${String(last.level)}`);
    expect(w.iotlb).toEqual([]); // strict mode flushed it
  });

  it('lists the IOTLB entry a dma_read filled, and the context-cache entry, only once the device has accessed', () => {
    const before = run(name, [mapBidi]);
    const w0 = walkOf(before, 'm1', name);
    expect(w0.iotlb).toEqual([]);
    expect(w0.contextCache).toEqual([]);

    const r = run(name, [mapBidi, { op: 'dma_read', map: 'm1', offset: 0, len: 8 }]);
    const m = r.runner.mappings.get('m1')!;
    const w = walkOf(r, 'm1', name);
    const slpt = BigInt(r.path.domainPgtable(m.dev).pgdPfn) * 4096n;
    expect(w.iotlb).toEqual([`DID ${DID} iova 0x${(m.dma & ~0xfffn).toString(16)} 4K -> phys 0x1234000 R W`]);
    expect(w.contextCache).toEqual([`sid 00:04.0 DID ${DID} TT 0 SLPT 0x${slpt.toString(16)} AW 2`]);
  });

  it('in lazy mode an unmapped page still cached in the IOTLB is marked stale', () => {
    const r = run(name, [mapBidi, { op: 'dma_read', map: 'm1', offset: 0, len: 8 }, { op: 'unmap', map: 'm1' }], { agaw: 48, strict: false });
    const m = r.runner.mappings.get('m1')!;
    const w = walkOf(r, 'm1', name);
    const last = w.entries[w.entries.length - 1]!;
    const stop = `not present at level ${String(last.level)}`;
    expect(w.iotlb).toEqual([`DID ${DID} iova 0x${(m.dma & ~0xfffn).toString(16)} 4K -> phys 0x1234000 R W (stale: tables say ${stop})`]);
    expect(w.result).toBe(`${stop}; hardware still answers phys 0x1234000 R W`);
  });

  it('does not change the hardware: no IOTLB fill, no context-cache insert, no counters', () => {
    const r = run(name, [mapBidi]);
    const hw = r.path.machine.hw;
    const version = hw.translationVersion;
    const iotlbSize = hw.iotlb.size;
    const ccSize = hw.contextCache.size;
    const counters = JSON.stringify(hw.counters);
    const writeSeq = r.path.machine.memory.writeSeq;
    const a = walkOf(r, 'm1', name);
    const b = walkOf(r, 'm1', name);
    expect(b).toEqual(a);
    expect(hw.translationVersion).toBe(version);
    expect(hw.iotlb.size).toBe(iotlbSize);
    expect(hw.iotlb.size).toBe(0);
    expect(hw.contextCache.size).toBe(ccSize);
    expect(JSON.stringify(hw.counters)).toBe(counters);
    expect(r.path.machine.memory.writeSeq).toBe(writeSeq);
    // while a real device read does fill both caches
    r.path.machine.deviceRead(r.runner.mappings.get('m1')!.dev.sid, r.runner.mappings.get('m1')!.dma, 8);
    expect(hw.iotlb.size).toBe(1);
    expect(hw.translationVersion).not.toBe(version);
  });
});
