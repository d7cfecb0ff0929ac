import { maskNumber } from '../../domain/phone.ts';
import { DEFAULT_TENANT } from '../../domain/tenants.ts';
import { blocklistView } from '../../views.ts';
import { cliConfig, withVeil } from '../core.ts';
import { integerOption, maxLength } from '../input.ts';
import { isoTime, type Output, table } from '../output.ts';

export interface AddOptions {
  reason?: string;
}

export interface ListOptions {
  limit: string;
  cursor?: string;
}

/** `veil blocklist add`: never connect this number again (the service parses and checks it). */
export async function add(number: string, options: AddOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const reason = maxLength(options.reason, '--reason', 256);
  const { entry, added } = await withVeil(config, (veil) =>
    veil.blocklist.add(DEFAULT_TENANT, reason ? { number, reason } : { number }),
  );
  out.result(blocklistView(entry), () =>
    added
      ? `blocked ${maskNumber(entry.number)}: its calls and texts, and calls and texts to it, are refused`
      : `${maskNumber(entry.number)} was already blocked`,
  );
}

/** `veil blocklist list`: the blocked numbers, a page at a time; masked, as in every plain listing. */
export async function list(options: ListOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const limit = integerOption(options.limit, '--limit', 1, 500) as number;
  const page = await withVeil(config, (veil) =>
    veil.blocklist.list(DEFAULT_TENANT, { cursor: options.cursor, limit }),
  );
  out.result({ data: page.data.map(blocklistView), nextCursor: page.nextCursor }, () => {
    if (page.data.length === 0) return options.cursor ? 'no more blocked numbers' : 'no number is blocked';
    const rows = table([
      ['NUMBER', 'BLOCKED AT', 'REASON'],
      ...page.data.map((e) => [maskNumber(e.number), isoTime(e.createdAt), e.reason ?? '-']),
    ]);
    // The cursor is the last number: shown by --json (nextCursor), not in a masked listing.
    return page.nextCursor ? [...rows, 'more: --json gives the nextCursor to add as --cursor'] : rows;
  });
}

/** `veil blocklist remove`: connect this number again. */
export async function remove(number: string, out: Output): Promise<void> {
  const config = cliConfig();
  const removed = await withVeil(config, (veil) => veil.blocklist.remove(DEFAULT_TENANT, number));
  out.result({ number: removed, removed: true }, () => `unblocked ${maskNumber(removed)}`);
}
