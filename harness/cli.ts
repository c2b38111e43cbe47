/**
 * The dmadiff command line. Every error is one line on stderr and exit code 2.
 */
import { Command, CommanderError } from 'commander';
import { runDemo } from './demo.js';

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
  return p;
}

/** Run the CLI; returns the exit code. */
export async function main(argv: readonly string[], out: (s: string) => void = (s) => console.log(s), err: (s: string) => void = (s) => console.error(s)): Promise<number> {
  const p = program(out);
  try {
    await p.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return 0;
      err(`dmadiff: ${e.message.replace(/^error: /, '').split('\n')[0]}`);
      return 2;
    }
    if (e instanceof UsageError) {
      err(`dmadiff: ${e.message}`);
      return 2;
    }
    err(`dmadiff: internal error: ${e instanceof Error ? e.message : String(e)}`);
    return 3;
  }
}
