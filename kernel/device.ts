/**
 * The parts of struct device (and its dma_parms) the DMA paths read, and the DMA-API enums.
 */

/** enum dma_data_direction */
export const enum DmaDirection {
  Bidirectional = 0,
  ToDevice = 1,
  FromDevice = 2,
  None = 3,
}

/** DMA_ATTR_* bits the models honour */
export const DMA_ATTR_NO_WARN = 1 << 8;
export const DMA_ATTR_SKIP_CPU_SYNC = 1 << 5;

/** DMA_MAPPING_ERROR: (dma_addr_t)~0 */
export const DMA_MAPPING_ERROR = 0xffff_ffff_ffff_ffffn;
/** ULONG_MAX: the segment boundary of a device without dma_parms */
export const ULONG_MAX = 0xffff_ffff_ffff_ffffn;

export interface Device {
  /** dev_name(): "0000:bb:dd.f" for PCI devices */
  readonly name: string;
  /** the bound driver's name (dev_driver_string) */
  readonly driver: string;
  /** requester id: bus << 8 | devfn */
  readonly sid: number;
  readonly pci: boolean;
  /** pdev->untrusted, as set at probe time */
  untrusted: boolean;
  /** *dev->dma_mask */
  dmaMask: bigint;
  coherentDmaMask: bigint;
  /** dma_get_max_seg_size (an unsigned int in the kernel) */
  maxSegSize: number;
  /** dma_get_seg_boundary */
  segBoundaryMask: bigint;
  /** dma_get_min_align_mask (0 unless the driver sets it; NVMe sets 0xfff) */
  minAlignMask: number;
  /** dev->bus_dma_limit (0: none) */
  busDmaLimit: bigint;
}

/** DMA_BIT_MASK(n) */
export function dmaBitMask(bits: number): bigint {
  return bits >= 64 ? 0xffff_ffff_ffff_ffffn : (1n << BigInt(bits)) - 1n;
}

/** The kernel's dev_printk prefix: "<driver> <device>: " */
export function devPrefix(dev: Device): string {
  return `${dev.driver} ${dev.name}: `;
}
