/**
 * What the unit counts, one object shared by its parts: each part counts what it does (the walk
 * its IOTLB and context-cache lookups, the invalidation unit its invalidations, the DMA engine
 * the faults it reports) into the same record, which VtdHardware.counters hands out.
 */
export interface VtdCounters {
  iotlbHits: number;
  iotlbMisses: number;
  pageWalks: number;
  contextCacheHits: number;
  contextCacheMisses: number;
  faultsRecorded: number;
  faultsDropped: number;
  qiDescriptors: number;
  iotlbGlobal: number;
  iotlbDomain: number;
  iotlbPage: number;
  contextInvalidations: number;
  writeBufferFlushes: number;
}

export function newVtdCounters(): VtdCounters {
  return {
    iotlbHits: 0,
    iotlbMisses: 0,
    pageWalks: 0,
    contextCacheHits: 0,
    contextCacheMisses: 0,
    faultsRecorded: 0,
    faultsDropped: 0,
    qiDescriptors: 0,
    iotlbGlobal: 0,
    iotlbDomain: 0,
    iotlbPage: 0,
    contextInvalidations: 0,
    writeBufferFlushes: 0,
  };
}
