import pino, { type Logger as PinoLogger } from 'pino';
import pinoPretty from 'pino-pretty';
import { maskNumbersInText } from './domain/phone.ts';

/** What the core logs through: pino's logger, or anything with its three methods. */
export interface Logger {
  error(obj: unknown, msg?: string): void;
  warn(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
}

/**
 * The pino logger. Every line passes through a mask on its way out, so a real number never
 * reaches the log in clear, whichever field or message it hides in (`+1415*****02`); the
 * Authorization header is removed outright. With `pretty` (development, on a terminal) the masked
 * lines are laid out for a person by pino-pretty; otherwise they are JSON, one per line.
 */
export function createLogger(
  level: string,
  destination: { write(line: string): unknown } = process.stdout,
  { pretty = false }: { pretty?: boolean } = {},
): PinoLogger {
  const out = pretty
    ? pinoPretty({ destination: destination as NodeJS.WritableStream, sync: true })
    : destination;
  return pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', 'authorization'],
        remove: true,
      },
    },
    { write: (line: string) => out.write(maskNumbersInText(line)) },
  );
}
