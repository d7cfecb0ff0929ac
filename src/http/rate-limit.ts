import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AbuseLimits } from '../config.ts';
import { RateLimitedError } from '../domain/errors.ts';

const MINUTE_MS = 60_000;

/** Every key is counted apart: one key's burst never uses up another's budget. */
const byKey = (request: FastifyRequest) => request.apiKey.id;

const refusal = (_request: FastifyRequest, context: { max: number; ttl: number }) =>
  new RateLimitedError(
    `this API key made ${context.max} requests of this kind in the last minute, as many as it may`,
    Math.max(1, Math.ceil(context.ttl / 1000)),
  );

/**
 * Limits each API key's requests to the routes of `app` registered after this: at most
 * `requestsPerMinute` a minute (a window starting at the key's first request), counted in memory
 * on this instance; beyond, 429 `rate_limited` with `retry-after`, and every answer says where the
 * key stands (`x-ratelimit-limit`, `-remaining`, `-reset`). Keyed by the key's id, so it must come
 * after requireApiKey: a route's own hooks run after its plugin's, and a request without a valid
 * key has been refused (401) before it is counted. A route may set its own budget (routeRateLimit).
 */
export async function limitRequestsPerKey(app: FastifyInstance, limits: AbuseLimits): Promise<void> {
  if (limits.requestsPerMinute === 0 && limits.routesPerMinute === 0) return;
  await app.register(rateLimit, {
    global: limits.requestsPerMinute > 0,
    max: limits.requestsPerMinute,
    timeWindow: MINUTE_MS,
    keyGenerator: byKey,
    errorResponseBuilder: refusal,
  });
}

/**
 * POST /v1/route's budget: its own count per key (`routesPerMinute`), so that a burst of calls
 * and a burst of API requests never limit each other; off at 0.
 */
export function routeRateLimit(limits: AbuseLimits): RateLimitOptions | false {
  return limits.routesPerMinute > 0 ? { max: limits.routesPerMinute, timeWindow: MINUTE_MS } : false;
}
