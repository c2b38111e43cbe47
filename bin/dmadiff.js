#!/usr/bin/env node
// The dmadiff command: runs the compiled CLI (npm's prepare step builds it).
import { main } from '../dist/harness/cli.js';

process.exitCode = await main(process.argv.slice(2));
