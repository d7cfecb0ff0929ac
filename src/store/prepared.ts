import { type CompiledQuery, type Insertable, type QueryResult, type RawBuilder, sql } from 'kysely';
import type { Db, Schema } from './schema.ts';

/**
 * The text of every query compiled once, with a name of its own: PostgreSQL connections run them as
 * named prepared statements (postgres/store.ts), parsed and planned once per connection.
 */
const statementNames = new Map<string, string>();

/** The name of a query compiled once (by Prepared), or undefined for any other query. */
export function preparedName(sql: string): string | undefined {
  return statementNames.get(sql);
}

/**
 * A placeholder for each value of a statement: an expression of the value's own type, so that it
 * fits exactly where the value may go and the compiler checks it against the column.
 */
export type Placeholders<Values> = { readonly [K in keyof Values]: RawBuilder<Values[K]> };

interface Compilable<Row> {
  compile(): CompiledQuery<Row>;
}

/**
 * A query built and compiled once, then bound to new values for each run: no query building on
 * the hot path, and (the SQLite store caching statements by their text) no re-preparing either.
 *
 * `build` receives a placeholder for each named value and returns the query; the placeholders are
 * found again among the compiled parameters, so the values go exactly where Kysely put them.
 */
export class Prepared<Values extends object, Row> {
  readonly compiled: CompiledQuery<Row>;
  /** For each parameter taken from the values: its position, and the index of its name. */
  private readonly slots: { at: number; name: number }[] = [];

  constructor(
    names: readonly (keyof Values & string)[],
    build: (v: Placeholders<Values>) => Compilable<Row>,
  ) {
    const marker = (name: string) => `\u0000${name}\u0000`;
    const lookup = new Map(names.map((n, i) => [marker(n), i]));
    const placeholders = Object.fromEntries(names.map((n) => [n, sql`${marker(n)}`]));
    this.compiled = build(placeholders as Placeholders<Values>).compile();
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

/** The placeholder of a name made at run time (`person0`, `held3`): there, or the statement is wrong. */
export function slot<V>(v: object, name: string): RawBuilder<V> {
  const found = (v as Record<string, RawBuilder<V> | undefined>)[name];
  if (!found) throw new Error(`the statement has no value named ${name}`);
  return found;
}

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
export function statement<Values extends object, Row>(
  names: readonly (keyof Values & string)[],
  build: (db: Db, v: Placeholders<Values>) => Compilable<Row>,
): Statement<Values, Row> {
  const compiled = new WeakMap<object, Prepared<Values, Row>>();
  const run = (db: Db, values: readonly unknown[]) => {
    if (values.length !== names.length) {
      throw new Error(`a statement of ${names.length} values was given ${values.length}`);
    }
    const adapter = db.getExecutor().adapter;
    let prepared = compiled.get(adapter);
    if (!prepared) {
      prepared = new Prepared<Values, Row>(names, (v) => build(db, v));
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

/**
 * A table's columns, each once, in the order its INSERT statements bind them. The compiler refuses a
 * list that misses a column: a column added to the schema must be added here, and only here.
 */
export function columnList<Row>() {
  return <const List extends readonly (keyof Row & string)[]>(
    list: List &
      ([Exclude<keyof Row, List[number]>] extends [never]
        ? unknown
        : { missing: Exclude<keyof Row, List[number]> }),
  ): List => list;
}

/** A row's values in the order of its column list. */
export function valuesOf<Row, Column extends keyof Row>(columns: readonly Column[], row: Row): unknown[] {
  return columns.map((c) => row[c]);
}

/** The placeholders of the rows of a multi-row statement: `sessions.0.id`, `sessions.0.tenant_id`, … */
export function rowNames(table: string, columns: readonly string[], rows: number): string[] {
  return Array.from({ length: rows }, (_, i) => columns.map((c) => `${table}.${i}.${c}`)).flat();
}

/**
 * The INSERT of `rows` rows into a table, every column of each given by a placeholder, row after
 * row in the order of `columns` (bound by position, as valuesOf lays a row out). One statement per
 * row count, made when first needed.
 */
export function insertRows<T extends keyof Schema & string>(
  table: T,
  columns: readonly (keyof Schema[T] & string)[],
): (rows: number) => Statement<Record<string, unknown>, never> {
  return byShape(
    (rows: number) => rows,
    (rows) =>
      statement<Record<string, unknown>, never>(rowNames(table, columns, rows), (db, v) =>
        db.insertInto(table).values(rowsOf(table, columns, rows, v)),
      ),
  );
}

/**
 * The rows of placeholders of a multi-row INSERT. The one cast of the statements: the placeholders
 * are looked up by names made at run time, and the column list is the table's, checked by columnList.
 */
export function rowsOf<T extends keyof Schema & string>(
  table: T,
  columns: readonly (keyof Schema[T] & string)[],
  rows: number,
  v: Placeholders<Record<string, unknown>>,
): Insertable<Schema[T]>[] {
  return Array.from(
    { length: rows },
    (_, i) => Object.fromEntries(columns.map((c) => [c, v[`${table}.${i}.${c}`]])) as Insertable<Schema[T]>,
  );
}
