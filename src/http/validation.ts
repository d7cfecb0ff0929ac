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

/**
 * Where in a request's data a text holds the NUL character (U+0000), as a JSON pointer; undefined
 * when none does. PostgreSQL's text cannot hold it (the write would fail with a 500), and no field
 * of the API has a use for it.
 */
function nulAt(data: unknown, path: string): string | undefined {
  if (typeof data === 'string') return data.includes('\u0000') ? path : undefined;
  if (typeof data !== 'object' || data === null) return undefined;
  for (const [key, value] of Object.entries(data)) {
    const at = `${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    if (key.includes('\u0000')) return at;
    const found = nulAt(value, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

type Validate = ReturnType<Ajv['compile']>;

/**
 * The schema's check, then a refusal of any text holding NUL, named by its field. In that order:
 * the schema bounds what is walked (a body nested thousands deep is refused by it first).
 */
function refusingNul(validate: Validate): Validate {
  const check = ((data: unknown) => {
    const valid = validate(data);
    check.errors = validate.errors;
    if (!valid) return false;
    const at = nulAt(data, '');
    if (at === undefined) return true;
    check.errors = [
      {
        instancePath: at,
        schemaPath: '#',
        keyword: 'nul',
        params: {},
        message: 'must not contain the NUL character (\\u0000)',
      },
    ];
    return false;
  }) as Validate;
  return check;
}

/** Validates bodies exactly as sent and coerces only the text parts of a request; no text may hold NUL. */
export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  refusingNul((httpPart === 'body' ? exact : coercing).compile(schema)) as ReturnType<
    FastifySchemaCompiler<object>
  >;
