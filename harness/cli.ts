/**
 * The dmadiff command line. Every error is one line on stderr and exit code 2.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { SeededBugs } from './paths.js';
import { CommandError, gate, merge, nightly, replay, type Io, type SearchFlags } from './commands.js';
import { PLATFORM_MATRIX } from './property.js';
import { CONSUMERS, type Consumer } from './scenario.js';
import { SEEDED_BUGS } from './token.js';
import { WriteError } from './corpus.js';
import { runDemo } from './demo.js';
import { renderText } from './render.js';
import { failing, runScenario } from './runner.js';
import { ScenarioError, parseScenarioText } from './validation.js';
import { stableJson } from './json.js';

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
    .action((file: string, o: { json?: boolean; strictIova?: boolean; trace: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${e instanceof Error && 'code' in e ? String(e.code) : 'error'}`);
      }
      const s = parseScenarioText(text);
      const doc = runScenario(s, { strictIova: o.strictIova === true });
      out(o.json === true ? stableJson(doc) : renderText(s, doc));
      run.code = failing(doc, o.trace).length > 0 ? 1 : 0;
    });
  searchOptions(
    p.command('gate').description('search for divergences over the platform matrix; exit 0 only if none outside the allowlist and every branch that applies was reached (1: divergence, 2: bad usage, 3: internal error, 4: inconclusive)'),
    100,
  ).action((o: SearchCliOptions) => {
    run.code = gate(flags(o), io);
  });
  searchOptions(p.command('nightly').description('one deterministic shard of a long search, written as JSON'), 2000)
    .requiredOption('--shard <i/n>', 'which share of the search to run', shardArg)
    .option('--out <file>', 'where to write the shard result', 'dmadiff-shard.json')
    .action((o: SearchCliOptions & { shard: { index: number; count: number }; out: string }) => {
      run.code = nightly(flags(o), o.shard, o.out, io);
    });
  p.command('merge')
    .description('combine nightly shard results into one summary and one corpus')
    .argument('<files...>', 'shard result files')
    .option('--out <file>', 'where to write the merged summary')
    .option('--corpus <dir>', 'failure corpus directory', '.dmadiff/corpus')
    .action((files: string[], o: { out?: string; corpus: string }) => {
      run.code = merge(files, o.out, o.corpus, io);
    });
  p.command('replay')
    .description('turn a replay token back into its failing run')
    .argument('<token>', 'the token a failure printed')
    .option('--out <file>', 'export the shrunk scenario here')
    .action((token: string, o: { out?: string }) => {
      run.code = replay(token, o.out, io);
    });
  return p;
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

/** What commander hands over: SearchFlags with the two switches still optional. */
type SearchCliOptions = Omit<SearchFlags, 'checkTrace' | 'faults' | 'allowUnhit'> & { trace: boolean; broken?: SeededBugs; allowUnhit?: boolean };

function searchOptions(cmd: Command, runs: number): Command {
  return cmd
    .addOption(new Option('--runs <n>', 'generated runs per platform').argParser(positiveInt('--runs')).default(runs))
    .addOption(new Option('--seconds <s>', 'stop starting new runs after this many seconds per platform').argParser(positiveInt('--seconds')))
    .addOption(new Option('--seed <n>', 'base seed of the search').argParser(seedArg).default(1))
    .addOption(new Option('--consumers <list>', 'consumer models the workloads use').argParser(consumerList).default(['correct', 'i915'], 'correct,i915'))
    .addOption(
      new Option('--platforms <list>', 'platforms of the matrix to search').argParser(nameList).default(PLATFORM_MATRIX.map((p) => p.name), PLATFORM_MATRIX.map((p) => p.name).join(',')),
    )
    .addOption(new Option('--max-steps <n>', 'generated steps per run at most').argParser(positiveInt('--max-steps')).default(30))
    .option('--corpus <dir>', 'failure corpus directory', '.dmadiff/corpus')
    .option('--no-trace', 'do not fail on trace-accounting divergences (the trace events were a named blocker of the migration: keep this on)')
    .option('--allow-unhit', 'a branch that applies and was never reached does not make the verdict INCONCLUSIVE')
    .addOption(new Option('--broken <bug>', `switch on a seeded bug in one of the models (${SEEDED_BUGS.join(', ')})`).argParser(brokenArg));
}

function flags(o: SearchCliOptions): SearchFlags {
  const { trace, broken, allowUnhit, ...rest } = o;
  return { ...rest, checkTrace: trace, allowUnhit: allowUnhit === true, faults: broken ?? {} };
}

/** Run the CLI; returns the exit code. */
export async function main(argv: readonly string[], out: (s: string) => void = (s) => console.log(s), err: (s: string) => void = (s) => console.error(s)): Promise<number> {
  const tty = process.stderr.isTTY === true && process.env['CI'] === undefined;
  const io: Io = { out, err, ...(tty ? { progress: (l: string) => process.stderr.write(`\r\x1b[2K${l}`) } : {}) };
  const run: Invocation = { io, code: 0 };
  const noCommand = 'dmadiff: no command given (commands: gate, scenario, replay, nightly, merge, demo; try dmadiff --help)';
  if (argv.length === 0) {
    err(noCommand);
    return 2;
  }
  const p = program(run);
  try {
    await p.parseAsync([...argv], { from: 'user' });
    return run.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.help') {
        if (e.exitCode === 0) return 0;
        err(noCommand);
        return 2;
      }
      err(`dmadiff: ${e.message.replace(/^error: /, '').split('\n')[0]}`);
      return 2;
    }
    if (e instanceof UsageError || e instanceof ScenarioError || e instanceof CommandError || e instanceof WriteError) {
      err(`dmadiff: ${e.message}`);
      return 2;
    }
    err(`dmadiff: internal error: ${e instanceof Error ? e.message : String(e)}`);
    return 3;
  }
}
