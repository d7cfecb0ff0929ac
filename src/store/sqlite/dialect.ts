import type { Dialect } from '../dialect.ts';

export const SQLITE: Dialect = {
  name: 'sqlite',
  locksRows: false,
  writesTablesInOneStatement: false,
  lateral: false,
  batchesLookups: false,
  notifies: false,
};
