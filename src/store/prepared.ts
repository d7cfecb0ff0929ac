import type { CompiledQuery, QueryResult } from 'kysely';
import type { Db } from './db.ts';

/**
 * The text of every query compiled once, with a name of its own: PostgreSQL connections run them as
 * named prepared statements (db.ts), parsed and planned once per connection instead of every time.
 */
const statementNames = new Map<string, string>();

/** The name of a query compiled once (by Prepared), or undefined for any other query. */
export function preparedName(sql: string): string | undefined {
  return statementNames.get(sql);
}

/**
 * A query built and compiled once, then bound to new values for each run: no query building on
 * the hot path, and (the SQLite store caching statements by their text) no re-preparing either.
 *
 * `build` receives a placeholder for each named value and returns the query; the placeholders are
 * found again among the compiled parameters, so the values go exactly where Kysely put them.
 */
export class Prepared<Values extends Record<string, unknown>, Row> {
  private readonly compiled: CompiledQuery<Row>;
  /** For each parameter taken from the values: its position, and the index of its name. */
  private readonly slots: { at: number; name: number }[] = [];

  constructor(
    names: readonly (keyof Values & string)[],
    build: (placeholders: Record<keyof Values, string>) => { compile(): CompiledQuery<Row> },
  ) {
    const placeholder = (name: string) => `\u0000${name}\u0000`;
    const lookup = new Map(names.map((n, i) => [placeholder(n), i]));
    this.compiled = build(
      Object.fromEntries(names.map((n) => [n, placeholder(n)])) as Record<keyof Values, string>,
    ).compile();
    if (!statementNames.has(this.compiled.sql)) {
      statementNames.set(this.compiled.sql, `veil_${statementNames.size + 1}`);
    }
    this.compiled.parameters.forEach((parameter, at) => {
      const name = typeof parameter === 'string' ? lookup.get(parameter) : undefined;
      if (name !== undefined) this.slots.push({ at, name });
    });
    const missing = names.filter((_, i) => !this.slots.some((s) => s.name === i));
    if (missing.length > 0) throw new Error(`prepared query does not use ${missing.join(', ')}`);
  }

  /** The compiled query with these values, given in the order of the names. */
  bind(values: readonly unknown[]): CompiledQuery<Row> {
    const parameters = this.compiled.parameters.slice();
    for (const { at, name } of this.slots) parameters[at] = values[name];
    return { ...this.compiled, parameters };
  }
}

/**
 * A placeholder for a value: typed `never` so that it fits wherever the column's own type would.
 */
export type Placeholders<Values> = { readonly [K in keyof Values]: never };

/** A repository's statement, compiled once per database dialect and run with new values each time. */
export interface Statement<Values, Row> {
  execute(db: Db, values: Values): Promise<QueryResult<Row>>;
  /** Runs with the values given in the order of the statement's names, with no object to look them up in. */
  run(db: Db, values: readonly unknown[]): Promise<QueryResult<Row>>;
}

/**
 * Declares a statement of a repository. The query is built the first time it runs on a database
 * (per Kysely adapter, since SQLite and PostgreSQL compile it differently) and kept; then every run
 * binds the values into the compiled query, with no query building and, on SQLite, no re-preparing.
 */
export function statement<Values extends Record<string, unknown>, Row>(
  names: readonly (keyof Values & string)[],
  build: (db: Db, v: Placeholders<Values>) => { compile(): CompiledQuery<Row> },
): Statement<Values, Row> {
  const compiled = new WeakMap<object, Prepared<Values, Row>>();
  const run = (db: Db, values: readonly unknown[]) => {
    if (values.length !== names.length) {
      throw new Error(`a statement of ${names.length} values was given ${values.length}`);
    }
    const adapter = db.getExecutor().adapter;
    let prepared = compiled.get(adapter);
    if (!prepared) {
      prepared = new Prepared<Values, Row>(names, (v) => build(db, v as unknown as Placeholders<Values>));
      compiled.set(adapter, prepared);
    }
    return db.executeQuery(prepared.bind(values));
  };
  return {
    execute: (db, values) =>
      run(
        db,
        names.map((n) => values[n]),
      ),
    run,
  };
}

/**
 * Statements whose text depends on a shape (how many rows or people, which clauses): one for each
 * shape, made the first time that shape is asked for and kept.
 */
export function byShape<Shape, Made>(
  key: (shape: Shape) => string | number,
  make: (shape: Shape) => Made,
): (shape: Shape) => Made {
  const made = new Map<string | number, Made>();
  return (shape) => {
    const k = key(shape);
    let found = made.get(k);
    if (found === undefined) {
      found = make(shape);
      made.set(k, found);
    }
    return found;
  };
}
