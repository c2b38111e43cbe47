#!/usr/bin/env node
// npm does not link a package's own bin into its node_modules/.bin; the real-kernel
// check (../shared/oracle/check.py) looks for node_modules/.bin/dmadiff, so link it here.
import { mkdirSync, rmSync, symlinkSync, chmodSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const binDir = join(root, 'node_modules', '.bin');
const target = join(root, 'bin', 'dmadiff.js');
const link = join(binDir, 'dmadiff');
mkdirSync(binDir, { recursive: true });
rmSync(link, { force: true });
symlinkSync(relative(binDir, target), link);
chmodSync(target, 0o755);
