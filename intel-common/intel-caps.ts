/**
 * What both VT-d drivers derive from the unit's capability register when they set up a domain.
 * 5.10.262 and 6.1 share these rules (drivers/iommu/intel/iommu.c), so both models call them here.
 */
import { fls } from '../kernel/bits.js';
import { widthToAgaw } from '../vtd/regs.js';

/** DEFAULT_DOMAIN_ADDRESS_WIDTH */
export const DEFAULT_DOMAIN_ADDRESS_WIDTH = 57;

/**
 * iommu_calculate_agaw → __iommu_calculate_agaw(DEFAULT_DOMAIN_ADDRESS_WIDTH): the largest agaw
 * the unit supports (a set SAGAW bit) not above 57 bits; -1 if none.
 */
export function iommuCalculateAgaw(sagaw: number): number {
  for (let agaw = widthToAgaw(DEFAULT_DOMAIN_ADDRESS_WIDTH); agaw >= 0; agaw--) if ((sagaw >>> agaw) & 1) return agaw;
  return -1;
}

/**
 * domain_update_iommu_superpage: fls of the SLLPS bits (2 MiB, 1 GiB; mask 0x3) every unit
 * shares -- one unit here; 0 none, 1 = 2 MiB, 2 = 1 GiB. intel_iommu_superpage=0 is not modelled.
 */
export function domainUpdateIommuSuperpage(superPageVal: number): number {
  return fls(superPageVal & 0x3);
}
