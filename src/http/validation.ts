import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function ajv(coerceTypes: boolean | 'array'): Ajv {
  return addFormats(
    new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false }),
  );
}

// Query strings and params arrive as text and need coercion ("50" → 50). JSON bodies must not be
// coerced: ajv would turn `"maxSessions": 0` into null to satisfy `integer ≥ 1 | null`, silently.
const coercing = ajv('array');
const exact = ajv(false);

/** Validates bodies exactly as sent and coerces only the text parts of a request. */
export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? exact : coercing).compile(schema) as ReturnType<FastifySchemaCompiler<object>>;
