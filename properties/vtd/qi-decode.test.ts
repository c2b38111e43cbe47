/**
 * The named field decoders the hardware executes invalidations with: each descriptor (and
 * register command) built by the drivers' encoders, decoded, and every field checked against the
 * value written here from the VT-d layout (6.5.2.1 context-cache, 6.5.2.3 IOTLB, 6.5.2.8 wait;
 * 10.4.7-10.4.9 CCMD_REG, IOTLB_REG and IVA_REG).
 */
import { describe, expect, it } from 'vitest';
import { contextCommand, decodeContextCommand, decodeIotlbCommand, decodeIva, iotlbCommand } from '../../vtd/inv-reg.js';
import {
  ccDescriptor,
  decodeCcDescriptor,
  decodeIotlbDescriptor,
  decodeWaitDescriptor,
  iotlbDescriptor,
  qiDescType,
  waitDescriptor,
} from '../../vtd/qi-desc.js';
import { InvGranularity } from '../../vtd/regs.js';

describe('queued-invalidation descriptors', () => {
  it('VTD_INV_DESC_TYPE is bits 3:0 of qw0', () => {
    expect(qiDescType(ccDescriptor(InvGranularity.Global, 0, 0, 0).qw0)).toBe(1);
    expect(qiDescType(iotlbDescriptor(InvGranularity.Global, 0, { dr: false, dw: false }, 0n, false, 0).qw0)).toBe(2);
    expect(qiDescType(waitDescriptor(1, 0x1000).qw0)).toBe(5);
    expect(qiDescType(0xffffffff_fffffff3n)).toBe(3);
  });

  it('context-cache: G, DID, SID and FM', () => {
    expect(decodeCcDescriptor(ccDescriptor(InvGranularity.Page, 0x1234, 0xabcd, 2))).toEqual({ gran: 3, did: 0x1234, sid: 0xabcd, fm: 2 });
    expect(decodeCcDescriptor(ccDescriptor(InvGranularity.Domain, 0xffff, 0, 0))).toEqual({ gran: 2, did: 0xffff, sid: 0, fm: 0 });
    expect(decodeCcDescriptor(ccDescriptor(InvGranularity.Global, 0, 0, 0))).toEqual({ gran: 1, did: 0, sid: 0, fm: 0 });
    // the kernel's device-selective flush of 00:02.0 with FM 3 and DID 3, as literal bits
    expect(decodeCcDescriptor({ qw0: 0x3001000030031n, qw1: 0n, qw2: 0n, qw3: 0n })).toEqual({ gran: 3, did: 3, sid: 0x10, fm: 3 });
  });

  it('IOTLB: G, DID, DR, DW, ADDR (as a pfn), IH and AM', () => {
    expect(decodeIotlbDescriptor(iotlbDescriptor(InvGranularity.Page, 0xbeef, { dr: false, dw: true }, 0x123456789000n, true, 5))).toEqual({
      gran: 3,
      did: 0xbeef,
      dr: false,
      dw: true,
      pfn: 0x123456789,
      ih: true,
      am: 5,
    });
    expect(decodeIotlbDescriptor(iotlbDescriptor(InvGranularity.Domain, 7, { dr: true, dw: false }, 0n, false, 0))).toEqual({
      gran: 2,
      did: 7,
      dr: true,
      dw: false,
      pfn: 0,
      ih: false,
      am: 0,
    });
    // the widest address: bits 63:12 all set (pfn 2^52 - 1, exact); the low bits of addr are dropped
    const top = decodeIotlbDescriptor(iotlbDescriptor(InvGranularity.Page, 1, { dr: false, dw: false }, 0xffffffff_ffffffffn, false, 0x3f));
    expect(top).toMatchObject({ pfn: 0xf_ffff_ffff_ffff, ih: false, am: 0x3f });
  });

  it('wait: SW, IF, FN, status data and status address', () => {
    expect(decodeWaitDescriptor(waitDescriptor(0xdeadbeef, 0x7f00002004))).toEqual({
      sw: true,
      iflag: false,
      fn: false,
      statusData: 0xdeadbeef,
      statusAddr: 0x7f00002004,
    });
    // type 5 with IF (bit 4), SW (bit 5) and FN (bit 6); address bits 1:0 are not the address
    expect(decodeWaitDescriptor({ qw0: 0x00000007_00000075n, qw1: 0x7f00002007n, qw2: 0n, qw3: 0n })).toEqual({
      sw: true,
      iflag: true,
      fn: true,
      statusData: 7,
      statusAddr: 0x7f00002004,
    });
  });
});

describe('register-based invalidation commands', () => {
  it('IOTLB_REG: IVT, IIRG and DID', () => {
    expect(decodeIotlbCommand(iotlbCommand(InvGranularity.Page, 4, true))).toEqual({ ivt: true, gran: 3, did: 4 });
    expect(decodeIotlbCommand(iotlbCommand(InvGranularity.Domain, 0xffff, false))).toEqual({ ivt: true, gran: 2, did: 0xffff });
    expect(decodeIotlbCommand(iotlbCommand(InvGranularity.Global, 0, false))).toEqual({ ivt: true, gran: 1, did: 0 });
    // IIRG 2 and DID 1 without IVT
    expect(decodeIotlbCommand(0x2000000100000000n)).toEqual({ ivt: false, gran: 2, did: 1 });
  });

  it('IVA_REG: ADDR (as a pfn), IH and AM', () => {
    expect(decodeIva(0xffff4042n)).toEqual({ pfn: 0xffff4, ih: true, am: 2 });
    expect(decodeIva(0x100013n)).toEqual({ pfn: 0x100, ih: false, am: 19 });
  });

  it('CCMD_REG: ICC, CIRG, FM, SID and DID', () => {
    expect(decodeContextCommand(contextCommand(InvGranularity.Page, 4, 0x10, 3))).toEqual({ icc: true, gran: 3, fm: 3, sid: 0x10, did: 4 });
    expect(decodeContextCommand(contextCommand(InvGranularity.Domain, 0xabcd, 0, 0))).toEqual({ icc: true, gran: 2, fm: 0, sid: 0, did: 0xabcd });
    expect(decodeContextCommand(contextCommand(InvGranularity.Global, 0, 0, 0))).toEqual({ icc: true, gran: 1, fm: 0, sid: 0, did: 0 });
    // CIRG 3, SID 0x11, no ICC
    expect(decodeContextCommand(0x6000000000110000n)).toEqual({ icc: false, gran: 3, fm: 0, sid: 0x11, did: 0 });
  });
});
