/**
 * The dmadiff command line. Every error is one line on stderr and exit code 2.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { runDemo } from './demo.js';
import { renderText } from './render.js';
import { failing, runScenario } from './runner.js';
import { ScenarioError, parseScenarioText } from './validation.js';
import { stableJson } from './json.js';

export class UsageError extends Error {}

function program(out: (s: string) => void): Command {
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
    .option('--trace-parity', 'trace divergences fail like any other')
    .action((file: string, o: { json?: boolean; strictIova?: boolean; traceParity?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${file}: ${e instanceof Error && 'code' in e ? String(e.code) : 'error'}`);
      }
      const s = parseScenarioText(text);
      const doc = runScenario(s, { strictIova: o.strictIova === true });
      out(o.json === true ? stableJson(doc) : renderText(s, doc));
      exitCode = failing(doc, o.traceParity === true).length > 0 ? 1 : 0;
    });
  return p;
}

let exitCode = 0;

/** Run the CLI; returns the exit code. */
export async function main(argv: readonly string[], out: (s: string) => void = (s) => console.log(s), err: (s: string) => void = (s) => console.error(s)): Promise<number> {
  const p = program(out);
  exitCode = 0;
  try {
    await p.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return 0;
      err(`dmadiff: ${e.message.replace(/^error: /, '').split('\n')[0]}`);
      return 2;
    }
    if (e instanceof UsageError || e instanceof ScenarioError) {
      err(`dmadiff: ${e.message}`);
      return 2;
    }
    err(`dmadiff: internal error: ${e instanceof Error ? e.message : String(e)}`);
    return 3;
  }
}
