/**
 * Errors the domain and the store throw. Each has a stable snake_case `code`; the HTTP layer maps
 * codes to statuses in one place (src/http/errors.ts). Messages never contain a real number.
 */
export class VeilError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A request that can never succeed as sent; `field` names the part at fault. */
export class InvalidRequestError extends VeilError {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super('invalid_request', message);
  }
}

export class NotFoundError extends VeilError {
  constructor(what: string, id: string) {
    super('not_found', `${what} ${id} not found`);
  }
}

/** The request clashes with the current state (duplicate, closed session, different idempotent body). */
export class ConflictError extends VeilError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** No proxy number fits: the pool is full for this participant, country or region. */
export class PoolExhaustedError extends VeilError {
  constructor(message = 'no proxy number is free for this participant') {
    super('pool_exhausted', message);
  }
}

/**
 * A part of Veil the request needs is not there to answer now (a worker thread restarting, a call
 * to it that timed out): the request may be retried. A create retried with its externalId finds
 * the session if the lost answer was for a write that completed.
 */
export class UnavailableError extends VeilError {
  constructor(message: string) {
    super('unavailable', message);
  }
}

/**
 * Too many requests of one kind for now (a key's requests, a tenant's new sessions): the same
 * request may succeed after `retryAfterSeconds`.
 */
export class RateLimitedError extends VeilError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('rate_limited', message);
  }
}

export class UnauthorizedError extends VeilError {
  constructor(message = 'a valid API key is required: Authorization: Bearer <key>') {
    super('unauthorized', message);
  }
}

export class ForbiddenError extends VeilError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

/** Thrown by a store when a unique index refused a write; allocation retries on it. */
export class UniqueViolationError extends VeilError {
  constructor(readonly constraint: string) {
    super('conflict', `unique constraint ${constraint} refused the write`);
  }
}
