import type { Dialect } from '../dialect.ts';

export const POSTGRES: Dialect = {
  name: 'postgres',
  locksRows: true,
  writesTablesInOneStatement: true,
  lateral: true,
  batchesLookups: true,
  notifies: true,
};
