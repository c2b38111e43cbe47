/**
 * The divergence report, `dmadiff-report/1` (README "Reports"): what a maintainer needs to act on
 * a failure, built once (report.ts) and rendered as text, JSON, JUnit XML, Markdown and HTML.
 * Every address is a `0x` lowercase hex string, as in dmadiff-scenario/1 and dmadiff-result/1.
 */

export const REPORT_FORMAT = 'dmadiff-report/1';

export type PathId = 'legacy-intel' | 'dma-iommu';

/** One row of the coverage table: a platform of the search, one corpus entry, or the one scenario file reported. */
export interface CoverageRow {
  /** platform name, or the corpus entry's file name */
  name: string;
  kind: 'platform' | 'corpus' | 'scenario';
  runs: number;
  steps: number;
  /** divergences outside the allowlist found there */
  failures: number;
  /** allowlisted divergences, by entry id */
  allowlisted: Record<string, number>;
  /** branches that apply and were never reached (platform rows only) */
  unhit: string[];
  /** the replay tokens of its failures */
  tokens: string[];
  /** the ids of its failures in ReportDoc.failures */
  failureIds: string[];
  /**
   * corpus rows only: the entry could not be read (the first problem, naming the field), and
   * whether that fails the verdict (it does unless --ignore-corrupt)
   */
  unreadable?: { why: string; failsVerdict: boolean };
}

/** A scenario step, both paths' results side by side. */
export interface StepRow {
  index: number;
  /** the call, in one line ("map_sg s1 = nic 2 entries from_device") */
  call: string;
  legacy: string;
  generic: string;
  /** indexes into FailureReport.divergences of the divergences found at this step */
  divergences: number[];
}

export interface DivergenceRow {
  step: number;
  kind: string;
  detail: string;
  /** the allowlist entry that explains it, if any */
  allowlisted?: string;
  /** whether it fails the gate (not allowlisted, and checked: trace divergences are not under --no-trace) */
  fails: boolean;
  map?: string;
  device?: string;
}

/** A trace event of one path, with what it accounts for in the common vocabulary. */
export interface TraceLine {
  step: number;
  event: string;
  /** byte for byte the kernel's text */
  text: string;
}

/**
 * One line of the trace diff. The two paths' events are aligned by what they account for (the
 * trace accountant's vocabulary: "map nvme p:0x1000000" for a buffer page, "b:" a bounced
 * buffer page, "c:NAME:k" a coherent buffer's page, "s:" a swiotlb slot), one line per page:
 * ' ' both paths account for it, '-' only legacy, '+' only generic.
 */
export interface TraceDiffRow {
  op: ' ' | '-' | '+';
  step: number;
  line: string;
}

/** A DMAR fault line of a kernel log, decoded. */
export interface DecodedFault {
  /** VT-d fault reason number */
  reason: number;
  /** dmar.c's text for it */
  reasonText: string;
  access: 'read' | 'write';
  /** the page address the hardware recorded */
  addr: string;
  /** the requester, bb:dd.f */
  device: string;
}

export interface LogLine {
  step: number;
  text: string;
  fault?: DecodedFault;
}

/** One paging-structure entry on a walk. */
export interface WalkEntry {
  /** 'root', 'context', or the page-table level (4 = PML4 ... 1 = PTE; 5 with 57-bit AGAW) */
  level: 'root' | 'context' | number;
  /** physical address of the entry */
  addr: string;
  /** the entry's value: 64 bits (root/PTE) or 128 bits (context, "hi:lo") */
  value: string;
  /** its bits named as the VT-d spec names them ("P", "R", "W", "SP", "SNP", "TT=0", "AW=2", "DID=1", "ADDR=0x...") */
  bits: string[];
}

/** How one path's hardware translates one IOVA of a device, now (the end of the run). */
export interface Walk {
  path: PathId;
  device: string;
  /** bb:dd.f */
  bdf: string;
  iova: string;
  /** why this IOVA ("m1 +0", "s1 segment 1", "fault addr") */
  why: string;
  entries: WalkEntry[];
  /** what the walk ends in: "phys 0x1000000 R W" (a leaf), or "fault 0x06 (...)" / "not present at level 2" */
  result: string;
  /** IOTLB entries still holding a translation of this IOVA (DID, IOVA page, level, phys, R/W) */
  iotlb: string[];
  /** context-cache entries for the device's source id */
  contextCache: string[];
}

/** A physical page in the reachable-set difference. */
export interface ReachPage {
  side: 'legacy only' | 'generic only';
  /** physical page address */
  phys: string;
  perm: string;
  /** the mapping it belongs to on the path that reaches it ("m1 +0x1000", "swiotlb slot of s1", "page table", "unknown") */
  mapping: string;
}

/** Everything about one divergence that fails the gate. */
export interface DivergenceFocus {
  /** index into FailureReport.divergences */
  divergence: number;
  /** the steps involved: the one that diverged and the calls that made the mapping it names */
  steps: number[];
  trace: { legacy: TraceLine[]; generic: TraceLine[]; diff: TraceDiffRow[] };
  log: { legacy: LogLine[]; generic: LogLine[] };
  walks: Walk[];
  reachable: ReachPage[];
}

export interface FailureReport {
  /** the scenario's hash (the corpus entry's name) */
  id: string;
  /** one line: platform, kind and detail of the first failing divergence */
  title: string;
  platform: string;
  source: 'search' | 'corpus' | 'scenario';
  token?: string;
  /** where the scenario was stored, if it was */
  scenarioFile?: string;
  /** the shrunk scenario, as dmadiff-scenario/1 */
  scenario: unknown;
  steps: StepRow[];
  divergences: DivergenceRow[];
  focus: DivergenceFocus[];
}

export interface ReportDoc {
  format: typeof REPORT_FORMAT;
  /** gate, nightly, merge, scenario, replay, report */
  command: string;
  /** PASS, FAIL, INCONCLUSIVE, INTERRUPTED, ... (the command's verdict word), or DIVERGES / EQUIVALENT for one scenario */
  verdict: string;
  releases: { legacy: string; generic: string };
  coverage: CoverageRow[];
  failures: FailureReport[];
}
