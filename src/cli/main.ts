import { maskNumbersInText } from '../domain/phone.ts';
import { EXIT } from './output.ts';
import { buildProgram } from './program.ts';

/** Runs the `veil` command line on `argv` (node, script, args…). Each command sets process.exitCode. */
export function runVeil(argv: string[]): Promise<unknown> {
  return buildProgram()
    .parseAsync(argv)
    .catch((error: unknown) => {
      console.error(`veil: ${maskNumbersInText(error instanceof Error ? error.message : String(error))}`);
      process.exitCode = EXIT.software;
    });
}

if (import.meta.url === new URL(`file://${process.argv[1]}`).href) void runVeil(process.argv);
