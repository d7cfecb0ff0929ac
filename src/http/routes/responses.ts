import type { TSchema } from 'typebox';
import { ErrorBody } from '../schemas.ts';

/** A route's success responses plus the error body every route may answer with. */
export function withErrors<T extends Record<number, TSchema>>(
  success: T,
): T & { '4xx': typeof ErrorBody; '5xx': typeof ErrorBody } {
  return { ...success, '4xx': ErrorBody, '5xx': ErrorBody };
}
