import { maskNumbersInText } from '../domain/phone.ts';
import { EXIT } from './output.ts';
import { buildProgram } from './program.ts';

/** The `veil` command (bin/veil). Each command sets process.exitCode; the process ends when its work does. */
buildProgram()
  .parseAsync(process.argv)
  .catch((error: unknown) => {
    console.error(`veil: ${maskNumbersInText(error instanceof Error ? error.message : String(error))}`);
    process.exitCode = EXIT.software;
  });
