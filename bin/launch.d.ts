// Types for bin/launch.js (plain JS so the bin can run it before anything is compiled).
export declare const NODE_FLAGS: readonly string[];
export declare function youngGenerationChosen(execArgv: readonly string[], nodeOptions: string | undefined): boolean;
export declare function wasRelaunched(): boolean;
export declare function needsFlags(): boolean;
export declare function relaunch(script: string, args: readonly string[], onError: (line: string) => void): void;
export declare function onlyAsks(args: readonly string[]): boolean;
