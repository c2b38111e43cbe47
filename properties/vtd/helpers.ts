/**
 * Shared fixtures for the VT-d hardware tests.
 *
 * The expected memory contents are computed here from the specification of the pattern
 * (design: every little-endian 64-bit word at physical address p reads 0xA5 << 56 | p until
 * written), independently of vtd/memory.ts, so a test never takes its expectation from the code
 * under test.
 */
import { vtdConfig, type VtdConfig } from '../../vtd/caps.js';
import { VtdHardware } from '../../vtd/hardware.js';
import { TableProgrammer, type DomainTables } from '../../testbench/vtd-program.js';

export const PAGE = 4096;
/** PTE permission bits (VT-d second-level PTE bit 0 = R, bit 1 = W). */
export const R = 1;
export const W = 2;
export const RW = 3;
/** 00:02.0, the edu device of the recordings: bus 0, device 2, function 0. */
export const SID_EDU = 0x10;

const TWO32 = 2 ** 32;

/** The pattern bytes of [addr, addr + len), for addr + len <= 2^52. */
export function patternBytes(addr: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) {
    const a = addr + i;
    const byteInWord = a % 8;
    const word = a - byteInWord;
    if (byteInWord < 4) {
      out[i] = Math.floor((word % TWO32) / 2 ** (8 * byteInWord)) % 256;
    } else {
      // high dword: 0xA5 in its top byte, address bits 51:32 below
      const hi = 0xa5 * 2 ** 24 + Math.floor(word / TWO32);
      out[i] = Math.floor(hi / 2 ** (8 * (byteInWord - 4))) % 256;
    }
  }
  return out;
}

/** Bytes as a lower-case hex string, for readable comparisons. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

export function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

export interface Rig {
  hw: VtdHardware;
  prog: TableProgrammer;
  dom: DomainTables;
  sid: number;
  did: number;
}

export interface RigOptions {
  did?: number;
  sid?: number;
  /** domain width (defaults to the unit's agaw) */
  width?: number;
  /**
   * Issue the attach-time invalidations the kernel issues under caching mode: a device-selective
   * context-cache flush and a domain-selective IOTLB flush (kernel-semantics 5.5, 9.5.8).
   */
  flushAttach?: boolean;
}

/** A unit, its programmer, one domain and one attached device. */
export function rig(overrides: Partial<VtdConfig> = {}, opts: RigOptions = {}): Rig {
  const hw = new VtdHardware(vtdConfig(overrides));
  const prog = new TableProgrammer(hw);
  const did = opts.did ?? 1;
  const sid = opts.sid ?? SID_EDU;
  const dom = prog.newDomain(did, opts.width ?? hw.config.agaw);
  prog.attach(sid, dom);
  if (opts.flushAttach ?? true) {
    prog.flushContextDevice(sid, 0);
    prog.flushIotlbDomain(did);
  }
  return { hw, prog, dom, sid, did };
}

/** The byte address of a page frame number, as a BigInt IOVA. */
export function iovaOf(pfn: number, offset = 0): bigint {
  return (BigInt(pfn) << 12n) + BigInt(offset);
}

/** Phys page A: its first word reads 00 50 40 03 00 00 00 a5 (the pattern). */
export const A = 0x3405;
/** Phys page B: its first word reads 00 60 40 03 00 00 00 a5. */
export const B = 0x3406;
export const A_WORD = '00 50 40 03 00 00 00 a5';
export const B_WORD = '00 60 40 03 00 00 00 a5';

/** The first 8 bytes the device reads at pfn, or "fault <reason>". */
export function read8(r: Rig, pfn: number, sid = r.sid): string {
  const res = r.hw.dmaRead(sid, iovaOf(pfn), 8);
  return res.fault === undefined ? hex(res.data) : `fault ${res.fault.reason}`;
}
