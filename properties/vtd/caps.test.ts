/**
 * The capability registers (kernel-semantics 5.2, 5.4; shared/oracle/README.md:
 * QEMU 7.2 "cap 0xd2008c22260206 ecap 0xf00f4a").
 */
import { describe, expect, it } from 'vitest';
import { capRegister, decodeCaps, ecapRegister, QEMU_DEFAULT_CONFIG, vtdConfig } from '../../vtd/caps.js';
import { VtdHardware } from '../../vtd/hardware.js';

describe('cap / ecap register values', () => {
  it('QEMU defaults: cap 0xd2008c22260206, ecap 0xf00f4a (as recorded by the oracle)', () => {
    expect(capRegister(QEMU_DEFAULT_CONFIG)).toBe(0xd2008c22260206n);
    expect(ecapRegister(QEMU_DEFAULT_CONFIG)).toBe(0xf00f4an);
    expect(capRegister(vtdConfig())).toBe(0xd2008c22260206n);
  });

  it('aw-bits 48: SAGAW bits 1 and 2 (0x6 << 8), MGAW 47 (0x2f << 16)', () => {
    expect(capRegister(vtdConfig({ agaw: 48 }))).toBe(0xd2008c222f0606n);
  });

  it('aw-bits 57: SAGAW bits 1-3 (0xe << 8), MGAW 56 (0x38 << 16)', () => {
    expect(capRegister(vtdConfig({ agaw: 57 }))).toBe(0xd2008c22380e06n);
  });

  it('caching mode sets CM, bit 7', () => {
    expect(capRegister(vtdConfig({ cachingMode: true }))).toBe(0xd2008c22260286n);
  });

  it('single-bit capability switches', () => {
    // RWBF bit 4
    expect(capRegister(vtdConfig({ rwbf: true }))).toBe(0xd2008c22260216n);
    // ZLR bit 22
    expect(capRegister(vtdConfig({ zlr: true }))).toBe(0xd2008c22660206n);
    // PSI bit 39 off
    expect(capRegister(vtdConfig({ psi: false }))).toBe(0xd2000c22260206n);
    // SLLPS bits 35:34: none, 2 MiB only, 1 GiB only
    expect(capRegister(vtdConfig({ superpages: [] }))).toBe(0xd2008022260206n);
    expect(capRegister(vtdConfig({ superpages: ['2M'] }))).toBe(0xd2008422260206n);
    expect(capRegister(vtdConfig({ superpages: ['1G'] }))).toBe(0xd2008822260206n);
  });

  it('multi-bit fields: ND bits 2:0, NFR bits 47:40, MAMV bits 53:48', () => {
    expect(capRegister(vtdConfig({ nd: 2 }))).toBe(0xd2008c22260202n);
    expect(capRegister(vtdConfig({ faultRecords: 8 }))).toBe(0xd2078c22260206n);
    expect(capRegister(vtdConfig({ mamv: 9 }))).toBe(0xc9008c22260206n);
  });

  it('ecap: QI bit 1 and SC bit 7', () => {
    expect(ecapRegister(vtdConfig({ qi: false }))).toBe(0xf00f48n);
    expect(ecapRegister(vtdConfig({ snoopControl: true }))).toBe(0xf00fcan);
  });
});

describe('decodeCaps (the kernel cap_* / ecap_* macros)', () => {
  it('QEMU defaults decode to the values the kernel reads', () => {
    expect(decodeCaps(0xd2008c22260206n, 0xf00f4an)).toEqual({
      ndoms: 65536,
      rwbf: false,
      cm: false,
      sagaw: 0x2,
      mgaw: 39,
      zlr: false,
      fro: 0x220,
      superPageVal: 3,
      psi: true,
      nfr: 1,
      mamv: 18,
      dwd: true,
      drd: true,
      qi: true,
      sc: false,
      iro: 0xf0,
    });
  });

  it('48-bit with caching mode', () => {
    const c = decodeCaps(0xd2008c222f0686n, 0xf00f4an);
    expect(c.sagaw).toBe(0x6);
    expect(c.mgaw).toBe(48);
    expect(c.cm).toBe(true);
  });

  it('ND 2 → 256 domains; NFR field 7 → 8 records; SC and no QI from the ecap', () => {
    const c = decodeCaps(0xd2078c22260202n, 0xf00fc8n);
    expect(c.ndoms).toBe(256);
    expect(c.nfr).toBe(8);
    expect(c.sc).toBe(true);
    expect(c.qi).toBe(false);
  });

  it('the hardware exposes the registers and their decoding', () => {
    const hw = new VtdHardware(vtdConfig());
    expect(hw.cap).toBe(0xd2008c22260206n);
    expect(hw.ecap).toBe(0xf00f4an);
    expect(hw.caps.mamv).toBe(18);
    expect(hw.caps.fro).toBe(0x220);
    expect(hw.caps.ndoms).toBe(65536);
    expect(hw.faultRecordCount).toBe(1);
    const hw48 = new VtdHardware(vtdConfig({ agaw: 48, cachingMode: true }));
    expect(hw48.cap).toBe(0xd2008c222f0686n);
    expect(hw48.caps.cm).toBe(true);
  });
});
