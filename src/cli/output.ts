import { Option } from 'commander';
import { ConfigError } from '../config.ts';
import { InvalidRequestError, VeilError } from '../domain/errors.ts';
import { maskNumbersInText } from '../domain/phone.ts';

/** Exit codes, from sysexits(3) where one fits; 78 for bad configuration is what `npm start` uses too. */
export const EXIT = {
  /** Bad input, an unknown id, a conflict: the request itself cannot succeed. */
  failed: 1,
  /** The server or the database is not there to answer. */
  unavailable: 69,
  /** Something unexpected: a bug, or a database that fails. */
  software: 70,
  /** The server refused the simulator's signature. */
  forbidden: 77,
  config: 78,
} as const;

/**
 * Error codes that mean the database is not there to use, rather than a bug. The file-system ones
 * can only come from opening the SQLite file (or making its directory): the CLI touches no other.
 */
const DATABASE_UNAVAILABLE = new Set([
  'EACCES',
  'EROFS',
  'ENOTDIR',
  'EEXIST',
  'SQLITE_CANTOPEN',
  'SQLITE_READONLY',
  'ECONNREFUSED',
  'ENOTFOUND',
  'ETIMEDOUT',
  '28P01', // PostgreSQL: authentication failed
  '3D000', // PostgreSQL: no such database
]);

/** A failure the CLI itself detects, with the exit code it ends with and a stable snake_case code. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

/** Where a command's result goes: its JSON with --json, else plain words for an operator. */
export class Output {
  constructor(readonly json: boolean) {}

  /** Prints `value` as one JSON document with --json, else the lines `human` gives. */
  result(value: unknown, human: () => string | string[]): void {
    const text = this.json ? JSON.stringify(value, null, 2) : [human()].flat().join('\n');
    process.stdout.write(`${text}\n`);
  }

  /**
   * Reports a failure as one line on stderr (`{"error":{...}}` with --json, the API's shape) and
   * sets the exit code. The message is masked: an error never echoes a number back in clear.
   */
  failure(error: unknown): void {
    const { code, message, field, exitCode } = describeFailure(error);
    const masked = maskNumbersInText(message);
    process.stderr.write(
      this.json
        ? `${JSON.stringify({ error: { code, message: masked, ...(field ? { field } : {}) } })}\n`
        : `veil: ${masked}\n`,
    );
    process.exitCode = exitCode;
  }
}

function describeFailure(error: unknown): {
  code: string;
  message: string;
  field?: string;
  exitCode: number;
} {
  if (error instanceof CliError)
    return { code: error.code, message: error.message, exitCode: error.exitCode };
  if (error instanceof ConfigError) {
    return {
      code: 'bad_configuration',
      message: `bad configuration: ${error.message}`,
      exitCode: EXIT.config,
    };
  }
  if (error instanceof VeilError) {
    const field = error instanceof InvalidRequestError ? error.field : undefined;
    return { code: error.code, message: error.message, field, exitCode: EXIT.failed };
  }
  const message = error instanceof Error ? error.message : String(error);
  if (DATABASE_UNAVAILABLE.has((error as { code?: string })?.code ?? '')) {
    return {
      code: 'database_unavailable',
      message: `cannot open the database: ${message}`,
      exitCode: EXIT.unavailable,
    };
  }
  return { code: 'internal', message: `unexpected error: ${message}`, exitCode: EXIT.software };
}

/** `--json`, which every command takes. */
export function jsonOption(): Option {
  return new Option('--json', 'print the raw JSON instead of text');
}

/** Runs a command's work; a failure becomes one line on stderr and the exit code that fits it. */
export async function guarded(
  json: boolean | undefined,
  work: (out: Output) => Promise<void>,
): Promise<void> {
  const out = new Output(json === true);
  try {
    await work(out);
  } catch (error) {
    out.failure(error);
  }
}

/** Rows as left-aligned columns, two spaces apart; the last column is not padded. */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** An epoch-milliseconds time as the API shows it. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
