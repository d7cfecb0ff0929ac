import { UniqueViolationError } from '../domain/errors.ts';

/** Translates a driver's unique-violation error into the domain's, leaving others untouched. */
export function asUniqueViolation(error: unknown): UniqueViolationError | undefined {
  const e = error as { code?: string; constraint?: string; message?: string };
  if (e?.code === '23505') return new UniqueViolationError(e.constraint ?? 'unique');
  if (e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new UniqueViolationError(/: (.*)$/.exec(e.message ?? '')?.[1] ?? 'unique');
  }
  return undefined;
}

/**
 * Thrown by a write that finds, before it commits, that a concurrent writer made it wrong in a way
 * no constraint catches: the transaction is rolled back and run again, and then sees that write.
 */
export class WriteRaceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WriteRaceError';
  }
}

/**
 * True for the errors a concurrent writer can cause and a retry can cure: a unique index refusing
 * a proxy another instance took a moment ago, a deadlock, a serialisation failure, a busy SQLite
 * file, a race found by the write itself (WriteRaceError).
 */
export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return (
    error instanceof WriteRaceError ||
    asUniqueViolation(error) !== undefined ||
    code === '40P01' ||
    code === '40001' ||
    code === 'SQLITE_BUSY'
  );
}
