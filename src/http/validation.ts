import { Ajv, type SchemaValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';
import { metadataProblem } from '../domain/session.ts';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

/**
 * `x-metadata`: a session's metadata within METADATA_LIMITS (depth and size), which JSON Schema
 * cannot say without a schema as deep as the limit. Checked here so that a body nested thousands
 * deep is refused before anything (a thread, a fingerprint, the database) walks it.
 */
export const METADATA_KEYWORD = 'x-metadata';

const withinLimits: SchemaValidateFunction = (_schema: boolean, data: unknown) => {
  const problem = metadataProblem(data);
  withinLimits.errors = problem ? [{ keyword: METADATA_KEYWORD, message: problem, params: {} }] : [];
  return problem === undefined;
};

function ajv(coerceTypes: boolean | 'array'): Ajv {
  const instance = addFormats(
    new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false }),
  );
  instance.addKeyword({
    keyword: METADATA_KEYWORD,
    schemaType: 'boolean',
    errors: true,
    validate: withinLimits,
  });
  return instance;
}

// Query strings and params arrive as text and need coercion ("50" → 50). JSON bodies must not be
// coerced: ajv would turn `"maxSessions": 0` into null to satisfy `integer ≥ 1 | null`, silently.
const coercing = ajv('array');
const exact = ajv(false);

/** Validates bodies exactly as sent and coerces only the text parts of a request. */
export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? exact : coercing).compile(schema) as ReturnType<FastifySchemaCompiler<object>>;
