/**
 * The dmadiff command line. Every error is one line on stderr and exit code 2.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { must } from '../kernel/assert.js';
import { MODELLED_KERNELS } from '../kernel/release.js';
import type { SeededBugs } from './run/paths.js';
import { gate, nightly, replay, type Io, type SearchFlags } from './cli/commands.js';
import { CommandError, EXIT_BAD_INPUT, EXIT_INTERNAL } from './cli/exit.js';
import { merge } from './search/shards.js';
import { ProgressLine, type LineSink } from './cli/progress.js';
import { PLATFORM_MATRIX } from './search/property.js';
import { CONSUMERS, scenarioToJson, type Consumer, type Dir, type Scenario } from './workload/scenario.js';
import { importTrace } from './workload/import/import-trace.js';
import { TraceImportError } from './workload/import/ftrace.js';
import type { FailureReport, ReportDoc } from '../reports/types.js';
import { SEEDED_BUGS } from './search/token.js';
import { WriteError, writeAtomic } from './search/corpus.js';
import { runDemo } from './cli/demo.js';
import { renderText } from './workload/render.js';
import { failing, runScenario } from './run/runner.js';
import { parseScenarioText } from './workload/validation.js';
import { ScenarioError } from './workload/fields.js';
import { stableJson } from './cli/json.js';
import { buildFailure, buildFailureWithResult, type FailureInput } from '../reports/report.js';
import { renderReportText } from '../reports/text.js';
import { reportDoc, writeReports, writeReportsBeside } from '../reports/write.js';
import { oneScenarioRow } from '../reports/from-search.js';

export class UsageError extends Error {}

/** One command-line invocation: its output functions and the exit code its action sets. */
interface Invocation {
  io: Io;
  code: number;
}

function program(run: Invocation): Command {
  const { io } = run;
  const out = io.out;
  const p = new Command('dmadiff')
    .description('Differential checker of the VT-d DMA migration: legacy intel-iommu (Linux 5.10) vs dma-iommu (Linux 6.1)')
    .version(versionLine(), '-V, --version', 'print the version of dmadiff and of the kernels it models')
    .exitOverride()
    .configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: () => undefined })
    .showHelpAfterError(false);
  p.command('demo')
    .description('walk through the simulated VT-d hardware: map, translate, invalidate, fault')
    .action(() => runDemo(out));
  p.command('scenario')
    .description('run a dmadiff-scenario/1 file on both paths and compare them step by step')
    .argument('<file>', 'scenario file (JSON)')
    .option('--json', 'print the dmadiff-result/1 document')
    .option('--strict-iova', 'compare IOVA values too')
    .option('--no-trace', 'do not fail on trace-accounting divergences (they are still reported)')
    .option('--paranoid', 'after every step, check the incrementally kept reachable sets against a recomputation from scratch (slow; a difference is an internal error)')
    .option('--report <dir>', 'write its divergence report there (every format)')
    .action((file: string, o: { json?: boolean; strictIova?: boolean; trace: boolean; paranoid?: boolean; report?: string }) => {
      const s = parseScenarioText(readScenarioFile(file));
      const runOpts = { strictIova: o.strictIova === true, paranoid: o.paranoid === true };
      // a scenario that names seeded bugs (exported from a --broken run) runs with them; with
      // --report, once, the report watching the run
      const reported = o.report !== undefined ? buildFailureWithResult(scenarioInput(file, s, o.trace, runOpts)) : undefined;
      const doc = reported?.result ?? runScenario(s, runOpts);
      out(o.json === true ? stableJson(doc) : renderText(s, doc));
      run.code = failing(doc, o.trace).length > 0 ? 1 : 0;
      if (o.report !== undefined && reported !== undefined) writeReportsBeside(o.report, scenarioDoc('scenario', file, reported.report), io);
    });
  searchOptions(
    p.command('gate').description(
      'replay the corpus, then search for divergences over the platform matrix; exit 0 only if none outside the allowlist and every branch that applies was reached (1: divergence, 2: bad usage or unreadable corpus, 3: internal error, 4: inconclusive, 5: interrupted)',
    ),
    100,
    GATE_CORPUS,
  ).action(async (o: SearchCliOptions) => {
    run.code = await gate(flags(o), io);
  });
  searchOptions(p.command('nightly').description('replay its corpus, then one deterministic shard of a long search, written as JSON (exit codes as gate)'), 2000, NIGHTLY_CORPUS)
    .requiredOption('--shard <i/n>', 'which share of the search to run', shardArg)
    .option('--out <file>', 'where to write the shard result', 'dmadiff-shard.json')
    .action(async (o: SearchCliOptions & { shard: { index: number; count: number }; out: string }) => {
      run.code = await nightly(flags(o), o.shard, o.out, io);
    });
  p.command('merge')
    .description('combine the shards of one nightly search into one summary and one corpus (1: a failure, 2: not the shards of one search, 4: partial)')
    .argument('<files...>', 'shard result files')
    .option('--out <file>', 'where to write the merged summary (JSON)')
    .option('--markdown <file>', 'where to write the summary as markdown (a CI job summary)')
    .option('--corpus <dir>', 'failure corpus directory', NIGHTLY_CORPUS)
    .option('--partial', 'merge the shards that finished when some are missing or stopped early (verdict at best INCONCLUSIVE)')
    .option('--report <dir>', 'write the merged report there (every format)')
    .action((files: string[], o: { out?: string; markdown?: string; corpus: string; partial?: boolean; report?: string }) => {
      run.code = merge(files, { ...(o.out !== undefined ? { out: o.out } : {}), ...(o.markdown !== undefined ? { markdown: o.markdown } : {}), ...(o.report !== undefined ? { report: o.report } : {}), corpus: o.corpus, partial: o.partial === true }, io);
    });
  p.command('replay')
    .description('turn a replay token back into its failing run')
    .argument('<token>', 'the token a failure printed')
    .option('--out <file>', 'export the shrunk scenario here')
    .option('--report <dir>', 'write its report there (every format)')
    .action((token: string, o: { out?: string; report?: string }) => {
      run.code = replay(token, o.out, io, o.report);
    });
  p.command('report')
    .description("render one scenario's divergence report: the steps side by side, the trace diff, the kernel logs with DMAR faults decoded, the page-table walks, the reachable-set difference")
    .argument('<file>', 'scenario file (dmadiff-scenario/1)')
    .option('--report <dir>', 'also write every format there (report.html, report.txt, report.json, junit.xml, summary.md)')
    .option('--json', 'print the dmadiff-report/1 document instead of text')
    .option('--no-trace', 'trace-accounting divergences do not fail')
    .action((file: string, o: { report?: string; json?: boolean; trace: boolean }) => {
      const doc = scenarioDoc('report', file, buildFailure(scenarioInput(file, parseScenarioText(readScenarioFile(file)), o.trace)));
      out(o.json === true ? stableJson(doc) : renderReportText(doc, process.stdout.isTTY === true).trimEnd());
      if (o.report !== undefined) writeReports(o.report, doc);
      run.code = doc.verdict === 'DIVERGES' ? 1 : 0;
    });
  p.command('import-trace')
    .description("turn a real driver's IOMMU ftrace (5.10 intel_iommu:* or 6.1 iommu:map/unmap events) into a scenario that keeps the IOVAs the kernel returned; prints one line of what it assumed")
    .argument('<file>', 'ftrace text: /sys/kernel/tracing/trace or trace-cmd report output')
    .option('--out <file>', 'write the scenario there (default: standard output, the summary then goes to standard error)')
    .option('--device <bdf>', "5.10: import only this device's calls; 6.1: the device the events belong to (they name none)")
    .addOption(new Option('--platform <name>', 'the platform to replay on').choices(PLATFORM_MATRIX.map((x) => x.name)).default('qemu-strict'))
    .addOption(new Option('--dir <dir>', 'DMA direction of every call (no event names it)').choices(['bidirectional', 'to_device', 'from_device']).default('bidirectional'))
    .addOption(new Option('--mask <bits>', 'DMA mask of every device, streaming and coherent').argParser(maskArg).default(64))
    .option('--touch', 'add a device read of every mapping after it is mapped and before it is unmapped')
    .action((file: string, o: { out?: string; device?: string; platform: string; dir: Dir; mask: number; touch?: boolean }) => {
      const r = importTrace(readScenarioFile(file), { source: basename(file), platform: must(PLATFORM_MATRIX.find((x) => x.name === o.platform), `platform ${o.platform} (one of --platform's choices)`), ...(o.device !== undefined ? { device: o.device } : {}), dir: o.dir, mask: o.mask, touch: o.touch === true });
      const text = stableJson(scenarioToJson(r.scenario));
      if (o.out !== undefined) {
        writeAtomic(o.out, `${text}\n`);
        out(r.summary);
      } else {
        out(text);
        io.err(r.summary);
      }
    });
  return p;
}

function maskArg(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 12 || Number(v) > 64) throw new InvalidArgumentError(`--mask expects a number of bits 12..64, got "${v}"`);
  return Number(v);
}

/** How a scenario file is reported: named by its file, judged as its run is. */
function scenarioInput(file: string, s: Scenario, checkTrace: boolean, opts: { strictIova?: boolean; paranoid?: boolean } = {}): FailureInput {
  return { scenario: s, platform: basename(file), source: 'scenario', scenarioFile: file, checkTrace, ...opts };
}

/** The report of one scenario file: DIVERGES when a divergence fails the gate, else EQUIVALENT. */
function scenarioDoc(command: string, file: string, fr: FailureReport): ReportDoc {
  return reportDoc(command, fr.focus.length > 0 ? 'DIVERGES' : 'EQUIVALENT', [oneScenarioRow(basename(file), 'scenario', fr)], [fr]);
}

function readScenarioFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${e instanceof Error && 'code' in e ? String(e.code) : 'error'}`);
  }
}

function positiveInt(flag: string): (v: string) => number {
  return (v: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`${flag} expects a positive integer, got "${v}"`);
    return Number(v);
  };
}

function seedArg(v: string): number {
  if (!/^-?\d+$/.test(v) || Math.abs(Number(v)) > 2 ** 31 - 1) throw new InvalidArgumentError(`--seed expects a 32-bit integer, got "${v}"`);
  return Number(v);
}

function consumerList(v: string): Consumer[] {
  const list = v.split(',').map((x) => x.trim());
  for (const c of list) if (!CONSUMERS.includes(c as Consumer)) throw new InvalidArgumentError(`--consumers: unknown consumer "${c}" (${CONSUMERS.join(', ')})`);
  return list as Consumer[];
}

function nameList(v: string): string[] {
  return v.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

function shardArg(v: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(v);
  if (m === null || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) throw new InvalidArgumentError(`--shard expects i/n with 1 <= i <= n, got "${v}"`);
  return { index: Number(m[1]), count: Number(m[2]) };
}

function brokenArg(v: string): SeededBugs {
  if (!(SEEDED_BUGS as readonly string[]).includes(v)) throw new InvalidArgumentError(`--broken: unknown seeded bug "${v}" (${SEEDED_BUGS.join(', ')})`);
  return { [v]: true };
}

/** What commander hands over: SearchFlags with the switches still optional. */
type SearchCliOptions = Omit<SearchFlags, 'checkTrace' | 'faults' | 'allowUnhit' | 'prune' | 'ignoreCorrupt' | 'paranoid'> & {
  paranoid?: boolean;
  trace: boolean;
  broken?: SeededBugs;
  allowUnhit?: boolean;
  prune?: boolean;
  ignoreCorrupt?: boolean;
};

/** Where the gate keeps its failures, and where the nightly search keeps its own (never the gate's silently). */
export const GATE_CORPUS = '.dmadiff/corpus';
export const NIGHTLY_CORPUS = '.dmadiff/nightly-corpus';

function searchOptions(cmd: Command, runs: number, corpus: string): Command {
  return cmd
    .addOption(new Option('--runs <n>', 'generated runs per platform').argParser(positiveInt('--runs')).default(runs))
    .addOption(new Option('--seconds <s>', 'stop starting new runs after this many seconds per platform').argParser(positiveInt('--seconds')))
    .addOption(new Option('--seed <n>', 'base seed of the search').argParser(seedArg).default(1))
    .addOption(new Option('--consumers <list>', 'consumer models the workloads use').argParser(consumerList).default(['correct', 'i915'], 'correct,i915'))
    .addOption(
      new Option('--platforms <list>', 'platforms of the matrix to search').argParser(nameList).default(PLATFORM_MATRIX.map((p) => p.name), PLATFORM_MATRIX.map((p) => p.name).join(',')),
    )
    .addOption(new Option('--max-steps <n>', 'generated steps per run at most').argParser(positiveInt('--max-steps')).default(30))
    .option('--corpus <dir>', 'failure corpus directory: replayed first, each failure stored the moment it is found', corpus)
    .option('--prune', 'remove corpus entries that no longer fail (they are kept by default)')
    .option('--ignore-corrupt', 'unreadable corpus entries are reported but do not make the exit non-zero')
    .option('--no-trace', 'do not fail on trace-accounting divergences (the trace events were a named blocker of the migration: keep this on)')
    .option('--allow-unhit', 'a branch that applies and was never reached does not make the verdict INCONCLUSIVE')
    .option('--paranoid', 'after every step, check the incrementally kept reachable sets against a recomputation from scratch (slow; a difference is an internal error)')
    .option('--report <dir>', 'write the report there: report.html, report.txt, report.json (dmadiff-report/1), junit.xml, summary.md')
    .addOption(new Option('--broken <bug>', `switch on a seeded bug in one of the models (${SEEDED_BUGS.join(', ')})`).argParser(brokenArg));
}

function flags(o: SearchCliOptions): SearchFlags {
  const { trace, broken, allowUnhit, prune, ignoreCorrupt, paranoid, ...rest } = o;
  return { ...rest, checkTrace: trace, allowUnhit: allowUnhit === true, faults: broken ?? {}, prune: prune === true, ignoreCorrupt: ignoreCorrupt === true, paranoid: paranoid === true };
}

/** The package root: the nearest folder above this module with dmadiff's package.json (dist/harness or harness). */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const f = join(dir, 'package.json');
    if (existsSync(f)) return dir;
    dir = dirname(dir);
  }
  return undefined;
}

/** `dmadiff --version`: the package version, and the releases the two models follow. */
export function versionLine(): string {
  const root = packageRoot();
  let v = 'unknown';
  if (root !== undefined) {
    try {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: unknown };
      if (typeof pkg.version === 'string') v = pkg.version;
    } catch {
      // an unreadable package.json leaves the version unknown; --version still answers
    }
  }
  return `dmadiff ${v} (legacy intel-iommu: Linux ${MODELLED_KERNELS.legacy}; dma-iommu: Linux ${MODELLED_KERNELS.generic})`;
}

/**
 * A signal of the same kind this soon after the first is the same interrupt: a terminal's Ctrl-C
 * reaches both the launcher (bin/launch.js) and the CLI's node, and the launcher passes its copy on.
 */
const SAME_INTERRUPT_MS = 300;

/**
 * SIGINT and SIGTERM while a search runs: the first asks it to stop after the current run (the
 * command then prints what it has and exits 5); a second one quits at once.
 */
async function interruptible(io: Io, run: () => Promise<void>): Promise<void> {
  let signal: string | undefined;
  let at = 0;
  const handler = (sig: NodeJS.Signals): void => {
    if (signal !== undefined) {
      if (sig === signal && Date.now() - at < SAME_INTERRUPT_MS) return;
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    signal = sig;
    at = Date.now();
    io.err(`dmadiff: ${sig}: stopping after the current run (failures found so far are stored); again to quit at once`);
  };
  io.interrupted = () => signal;
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    await run();
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}

export interface MainOptions {
  /** where the progress line goes (default: stderr, when it is a terminal and not under CI) */
  progress?: LineSink;
  /** decides when a search stops instead of SIGINT/SIGTERM (tests) */
  interrupted?: () => string | undefined;
}

/** Run the CLI; returns the exit code. */
export async function main(
  argv: readonly string[],
  out: (s: string) => void = (s) => console.log(s),
  err: (s: string) => void = (s) => console.error(s),
  opts: MainOptions = {},
): Promise<number> {
  const tty = process.stderr.isTTY === true && process.env['CI'] === undefined;
  const sink = opts.progress ?? (tty ? process.stderr : undefined);
  const line = sink !== undefined ? new ProgressLine(sink) : undefined;
  const io: Io = line !== undefined ? { out: line.before(out), err: line.before(err), progress: (l) => line.show(l) } : { out, err };
  if (opts.interrupted !== undefined) io.interrupted = opts.interrupted;
  const run: Invocation = { io, code: 0 };
  const noCommand = 'dmadiff: no command given (commands: gate, scenario, replay, nightly, merge, demo; try dmadiff --help)';
  if (argv.length === 0) {
    err(noCommand);
    return 2;
  }
  const p = program(run);
  try {
    const search = argv[0] === 'gate' || argv[0] === 'nightly';
    const parse = async (): Promise<void> => {
      await p.parseAsync([...argv], { from: 'user' });
    };
    if (search && opts.interrupted === undefined) await interruptible(io, parse);
    else await parse();
    line?.clear();
    return run.code;
  } catch (e) {
    line?.clear();
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help') {
        if (e.exitCode === 0) return 0;
        err(noCommand);
        return 2;
      }
      err(`dmadiff: ${e.message.replace(/^error: /, '').split('\n')[0]}`);
      return EXIT_BAD_INPUT;
    }
    if (e instanceof UsageError || e instanceof ScenarioError || e instanceof CommandError || e instanceof WriteError || e instanceof TraceImportError) {
      err(`dmadiff: ${e.message}`);
      return EXIT_BAD_INPUT;
    }
    err(`dmadiff: internal error: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_INTERNAL;
  }
}
