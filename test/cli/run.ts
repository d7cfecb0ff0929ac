import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The real `veil` command, as an operator runs it. */
export const BIN = fileURLToPath(new URL('../../bin/veil', import.meta.url));

/**
 * How many CLI processes run at once across all suites. Each spends about a second of CPU
 * starting up; more at once than there are cores only makes every one of them slower.
 */
const SLOTS = Math.max(2, availableParallelism());
let free = SLOTS;
const queue: (() => void)[] = [];

async function inSlot<T>(work: () => Promise<T>): Promise<T> {
  if (free > 0) free--;
  else await new Promise<void>((resolve) => queue.push(resolve));
  try {
    return await work();
  } finally {
    // Hand the slot straight to the next in line, so that none is taken twice.
    const next = queue.shift();
    if (next) next();
    else free++;
  }
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A directory for one suite: the CLI runs with it as working directory and a SQLite database in
 * it. The environment is only what is given, so the developer's own (DATABASE_URL, a secret)
 * never leaks into a test.
 */
export class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), 'veil-cli-'));
  readonly file = join(this.dir, 'veil.db');
  readonly env: Record<string, string>;

  constructor(env: Record<string, string> = {}) {
    this.env = { DATABASE_URL: `sqlite:${this.file}`, LOG_LEVEL: 'warn', ...env };
  }

  /** Runs `veil ...args`; asynchronous, so that a server in this process can answer it meanwhile. */
  veil(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
    return inSlot(() => this.run(args, env));
  }

  private run(args: string[], env: Record<string, string | undefined>): Promise<Run> {
    return new Promise((resolve) => {
      execFile(
        BIN,
        args,
        { cwd: this.dir, env: this.envWith(env), timeout: 60_000 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  /** Starts `veil ...args` and leaves it running (for `veil serve`). */
  start(args: string[], env: Record<string, string | undefined> = {}) {
    return spawn(BIN, args, { cwd: this.dir, env: this.envWith(env), stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** The suite's environment with `env` over it; an undefined value removes the variable. */
  private envWith(env: Record<string, string | undefined>): Record<string, string> {
    const merged: Record<string, string | undefined> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...this.env,
      ...env,
    };
    return Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The JSON a command printed with --json. */
export function json<T = Record<string, unknown>>(run: Run): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout}${run.stderr}`);
  }
}

/** True when the run failed the way bad input must: exit 1, one line on stderr, nothing on stdout. */
export function refused(run: Run): boolean {
  return run.code === 1 && run.stdout === '' && run.stderr.trim().split('\n').length === 1;
}
