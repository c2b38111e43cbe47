/**
 * The GitHub workflows, read as text: CI runs what the README promises (npm ci, npm test, the
 * gate with the i915 fix), and the nightly search survives a failing shard -- a shard that finds
 * a divergence exits 1, so its upload and the merge must run anyway -- keeps its corpus from night
 * to night, and reports a failure where someone will see it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './clone.js';

function workflow(name: string): string {
  return readFileSync(join(REPO, '.github', 'workflows', name), 'utf8');
}

/** The text of job `name`: from its `  name:` line to the next job (or the end). */
function job(text: string, name: string): string {
  const start = text.search(new RegExp(`^  ${name}:\\s*$`, 'm'));
  expect(start, `job ${name}`).toBeGreaterThanOrEqual(0);
  const rest = text.slice(start + 1);
  const next = rest.search(/^ {2}[\w-]+:\s*$/m);
  return next < 0 ? rest : rest.slice(0, next);
}

/** The steps of a job, each as its text (split at `- ` list items four spaces deeper than the job). */
function steps(jobText: string): string[] {
  return jobText.split(/^ {6}- /m).slice(1);
}

function step(jobText: string, pattern: RegExp): string {
  const found = steps(jobText).filter((s) => pattern.test(s));
  expect(found, `one step matching ${String(pattern)}`).toHaveLength(1);
  return found[0] ?? '';
}

const NODE_LTS = /node-version:\s*['"]?lts\/\*['"]?\s*$/m;
const NODE_PINNED = /node-version:\s*['"]?\d/m;

describe('ci.yml', () => {
  const ci = workflow('ci.yml');

  it('runs on every push and pull request', () => {
    const on = ci.slice(ci.search(/^on:/m), ci.search(/^jobs:/m));
    expect(on).toMatch(/^ {2}push:/m);
    expect(on).toMatch(/^ {2}pull_request:/m);
  });

  it('installs from the lockfile with the current LTS node and an npm cache', () => {
    expect(ci).toMatch(/uses: actions\/checkout@v4/);
    expect(ci).toMatch(/uses: actions\/setup-node@v4/);
    expect(ci).toMatch(NODE_LTS);
    expect(ci).not.toMatch(NODE_PINNED);
    expect(ci).toMatch(/cache:\s*npm\s*$/m);
    expect(ci).toMatch(/run:\s*npm ci\s*$/m);
  });

  it('runs npm test, then the gate with the fixed consumers', () => {
    const test = ci.search(/run:\s*npm test\s*$/m);
    const gate = ci.search(/run:\s*npx dmadiff gate --consumers correct,i915-fixed --report report\s*$/m);
    expect(test).toBeGreaterThan(ci.search(/run:\s*npm ci\s*$/m));
    expect(gate).toBeGreaterThan(test);
  });
});

describe('nightly.yml', () => {
  const nightly = workflow('nightly.yml');
  const shard = job(nightly, 'shard');
  const merge = job(nightly, 'merge');

  it('uses the current LTS node everywhere, not a pinned major', () => {
    expect(nightly).not.toMatch(NODE_PINNED);
    expect(shard).toMatch(NODE_LTS);
    expect(merge).toMatch(NODE_LTS);
  });

  it('runs eight shards that do not cancel each other, with a time limit', () => {
    expect(shard).toMatch(/fail-fast:\s*false/);
    expect(shard).toMatch(/shard:\s*\[1, 2, 3, 4, 5, 6, 7, 8\]/);
    expect(shard).toMatch(/timeout-minutes:\s*\d+/);
  });

  it('each shard replays the corpus of earlier nights and searches with the fixed consumers', () => {
    const restore = step(shard, /uses: actions\/cache\/restore@v4/);
    expect(restore).toMatch(/path:\s*corpus\s*$/m);
    expect(restore).toMatch(/key:\s*dmadiff-corpus-\$\{\{ github\.run_id \}\}-\$\{\{ github\.run_attempt \}\}\s*$/m);
    expect(restore).toMatch(/restore-keys:\s*dmadiff-corpus-\s*$/m);
    const search = step(shard, /dmadiff nightly/);
    expect(search).toMatch(/--shard \$\{\{ matrix\.shard \}\}\/8/);
    expect(search).toMatch(/--seed \$\{\{ github\.run_number \}\}/);
    expect(search).toMatch(/--consumers correct,i915-fixed/);
    expect(search).toMatch(/--corpus corpus/);
    expect(search).toMatch(/--out shard-\$\{\{ matrix\.shard \}\}\.json/);
    expect(shard.indexOf(restore)).toBeLessThan(shard.indexOf(search));
  });

  it("uploads a shard's result even when the shard failed", () => {
    const upload = step(shard, /uses: actions\/upload-artifact@v4/);
    expect(upload).toMatch(/if:\s*always\(\)/);
    expect(upload).toMatch(/name:\s*shard-\$\{\{ matrix\.shard \}\}/);
  });

  it('merges whatever the shards produced, partial sets included', () => {
    expect(merge).toMatch(/needs:\s*shard/);
    // job-level if: four spaces in, before the steps
    expect(merge.slice(0, merge.search(/^ {4}steps:/m))).toMatch(/^ {4}if:\s*always\(\)/m);
    const download = step(merge, /uses: actions\/download-artifact@v4/);
    expect(download).toMatch(/pattern:\s*shard-\*/);
    const run = step(merge, /dmadiff merge/);
    expect(run).toMatch(/shards\/\*\/shard-\*\.json/);
    expect(run).toMatch(/--partial/);
    expect(run).toMatch(/--corpus corpus/);
    expect(run).toMatch(/--out summary\.json/);
    expect(run).toMatch(/--markdown summary\.md/);
  });

  it('carries the corpus to the next night through the actions cache', () => {
    const restore = step(merge, /uses: actions\/cache\/restore@v4/);
    expect(restore).toMatch(/restore-keys:\s*dmadiff-corpus-\s*$/m);
    const save = step(merge, /uses: actions\/cache\/save@v4/);
    expect(save).toMatch(/if:\s*always\(\)/);
    expect(save).toMatch(/path:\s*corpus\s*$/m);
    expect(save).toMatch(/key:\s*dmadiff-corpus-\$\{\{ github\.run_id \}\}-\$\{\{ github\.run_attempt \}\}\s*$/m);
    expect(merge.indexOf(restore)).toBeLessThan(merge.indexOf(step(merge, /dmadiff merge/)));
  });

  it('puts the markdown summary on the run page and uploads the results, pass or fail', () => {
    const summary = step(merge, /GITHUB_STEP_SUMMARY/);
    expect(summary).toMatch(/if:\s*always\(\)/);
    expect(summary).toMatch(/cat summary\.md >> "\$GITHUB_STEP_SUMMARY"/);
    expect(summary).toMatch(/\[ -f summary\.md \]/);
    const upload = step(merge, /uses: actions\/upload-artifact@v4/);
    expect(upload).toMatch(/if:\s*always\(\)/);
    expect(upload).toMatch(/summary\.json/);
    expect(upload).toMatch(/corpus\//);
  });

  it('on failure annotates the run and opens or comments on an issue', () => {
    const permissions = merge.slice(merge.search(/^ {4}permissions:/m)).split(/^ {4}(?! )/m)[1] ?? '';
    expect(permissions).toMatch(/^ {6}issues:\s*write\s*$/m);
    expect(permissions).toMatch(/^ {6}contents:\s*read\s*$/m);
    const annotate = step(merge, /::error/);
    expect(annotate).toMatch(/if:\s*failure\(\)/);
    const issue = step(merge, /gh issue/);
    expect(issue).toMatch(/if:\s*failure\(\)/);
    expect(issue).toMatch(/GH_TOKEN:\s*\$\{\{ github\.token \}\}/);
    expect(issue).toMatch(/nightly dmadiff search failed/);
    expect(issue).toMatch(/gh issue create/);
    expect(issue).toMatch(/gh issue comment/);
    expect(issue).toMatch(/actions\/runs\/\$\{\{ github\.run_id \}\}/);
    expect(issue).toMatch(/summary\.md/);
  });
});
