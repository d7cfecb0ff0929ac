import type { FastifyError, FastifyInstance } from 'fastify';
import { InvalidRequestError, RateLimitedError, VeilError } from '../domain/errors.ts';
import { maskNumbersInText } from '../domain/phone.ts';

const STATUS: Record<string, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  pool_exhausted: 503,
  unavailable: 503,
};

/** Fastify's own error codes, in the API's words. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
};

/**
 * The body of every error answer. Its message and field are masked here, so no path can echo a real
 * number (a field is named by the client: a number sent as a field name would come back in it).
 */
export function errorBody(code: string, message: string, field?: string) {
  return {
    error: {
      code,
      message: maskNumbersInText(message),
      ...(field ? { field: maskNumbersInText(field) } : {}),
    },
  };
}

/**
 * The one error handler: domain errors map to their status by code, validation errors become
 * 400 invalid_request naming the field, and anything unexpected is logged and answered 500
 * without details. errorBody masks the messages, so a real number never travels back in an error.
 */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | VeilError, request, reply) => {
    if (error instanceof VeilError) {
      const field = error instanceof InvalidRequestError ? error.field : undefined;
      if (error instanceof RateLimitedError) reply.header('retry-after', error.retryAfterSeconds);
      return reply.status(STATUS[error.code] ?? 400).send(errorBody(error.code, error.message, field));
    }
    if ('validation' in error && error.validation) {
      const { field, problem } = describeValidation(error.validation);
      const where = `${error.validationContext ?? 'body'}${field ? `/${field}` : ''}`;
      return reply.status(400).send(errorBody('invalid_request', `${where} ${problem}`, field));
    }
    const code = error.code ? FASTIFY_CODES[error.code] : undefined;
    if (code) return reply.status(STATUS[code] ?? 400).send(errorBody(code, error.message));
    if (error.statusCode && error.statusCode < 500) {
      return reply.status(error.statusCode).send(errorBody('invalid_request', error.message));
    }
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send(errorBody('internal', 'internal error'));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send(errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
}

type ValidationError = FastifyError['validation'] extends (infer E)[] | undefined ? E : never;

/**
 * The first thing wrong with a request, in words that name the field and what it allows. ajv
 * reports a value outside a union of constants as one `const` error per branch and then "must
 * match a schema in anyOf", and an enum as "must be equal to one of the allowed values": both
 * become "must be one of voice, sms".
 */
export function describeValidation(errors: readonly ValidationError[]): {
  field?: string;
  problem: string;
} {
  // A union whose branches differ in type (an array, or an object): the branches of another type
  // only say "must be array"; what is wrong is in the branch of the value's own type.
  const isUnion = (e: ValidationError) => e.keyword === 'anyOf' || e.keyword === 'oneOf';
  const unionPaths = new Set(errors.filter(isUnion).map((e) => e.instancePath));
  const otherType = (e: ValidationError) => e.keyword === 'type' && unionPaths.has(e.instancePath);
  const ownType = errors.filter((e) => !otherType(e));
  if (ownType.length < errors.length && ownType.some((e) => !isUnion(e))) return describeValidation(ownType);
  const first = errors[0];
  if (!first) return { problem: 'is invalid' };
  const field = validationField(first.instancePath, first.params);
  const here = errors.filter((e) => e.instancePath === first.instancePath);
  const failedUnion = here.some((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  const branches = failedUnion ? here.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf') : [first];
  if (branches.length > 0 && branches.every((e) => e.keyword === 'const' || e.keyword === 'enum')) {
    const allowed = branches.flatMap((e) =>
      e.keyword === 'enum' ? (e.params.allowedValues as unknown[]) : [e.params.allowedValue],
    );
    return { field, problem: `must be one of ${allowed.map(String).join(', ')}` };
  }
  if (failedUnion && branches.length > 0 && branches.every((e) => e.keyword === 'type')) {
    return { field, problem: `must be ${branches.map((e) => String(e.params.type)).join(' or ')}` };
  }
  switch (first.keyword) {
    case 'additionalProperties':
      return { field, problem: 'is not a field of this request' };
    case 'required':
      return { field, problem: 'is required' };
    case 'minProperties':
      return { field, problem: 'must give at least one field' };
    default:
      return { field, problem: first.message ?? 'is invalid' };
  }
}

function validationField(instancePath: string, params: Record<string, unknown>): string | undefined {
  const path = instancePath.replace(/^\//, '');
  const extra = (params.missingProperty ?? params.additionalProperty) as string | undefined;
  return [path, extra].filter(Boolean).join('/') || undefined;
}
