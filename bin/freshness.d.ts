// Types for bin/freshness.js (plain JS so the bin can run it before anything is compiled).
export declare const RUNTIME_DIRS: readonly string[];
export declare function staleSources(root: string): string[];
