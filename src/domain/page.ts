/** A page of a list, as every list of the API answers: the items, and where the next page starts. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * A page of `limit` items from `rows`, read with one row more than the page: when that extra row
 * came back there is a next page, starting after the last item shown (ids sort by creation).
 */
export function pageOf<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  const data = rows.slice(0, limit);
  return { data, nextCursor: rows.length > limit ? (data.at(-1)?.id ?? null) : null };
}
