/**
 * What the legacy-intel and dma-iommu suites' helpers both give their tests, in one list: each
 * suite's helpers.ts re-exports this and adds its own runner (and anything only its path shows).
 */
export { subsetMismatch } from './oracle.js';
export { fillHex, hx, patternHex } from './pattern.js';
export {
  EDU,
  EDU_DID,
  IOAPIC_RESERVED,
  allLog,
  dmaOf,
  iotlbDescs,
  logOf,
  traceOf,
  type DeviceJson,
  type PlatformJson,
  type ReservedJson,
  type Run,
  type ScenarioOptions,
  type StepJson,
} from './scenario.js';
export * from './steps.js';
export { contextOf, walkLeaf, type LeafPte } from './tables.js';
