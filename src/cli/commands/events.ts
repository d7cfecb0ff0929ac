import { InvalidRequestError } from '../../domain/errors.ts';
import { isEventType } from '../../domain/events.ts';
import { DEFAULT_TENANT } from '../../domain/tenants.ts';
import { eventView } from '../../views.ts';
import { cliConfig, withVeil } from '../core.ts';
import { integerOption } from '../input.ts';
import { isoTime, type Output, table } from '../output.ts';

export interface ListOptions {
  type?: string;
  cursor?: string;
  limit: string;
}

/**
 * `veil events list`: the outbox, oldest first, each event with where its deliveries stand (what
 * `GET /v1/events` shows). The plain listing names no number; `--json` gives the events' data.
 */
export async function list(options: ListOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const limit = integerOption(options.limit, '--limit', 1, 500) as number;
  if (options.type !== undefined && !isEventType(options.type)) {
    throw new InvalidRequestError(`no event is of type ${options.type}`, '--type');
  }
  const page = await withVeil(config, (veil) =>
    veil.webhooks.events(DEFAULT_TENANT, { type: options.type, after: options.cursor, limit }),
  );
  out.result({ data: page.data.map(eventView), nextCursor: page.nextCursor }, () => {
    if (page.data.length === 0) return options.cursor ? 'no more events' : 'no event yet';
    const rows = table([
      ['EVENT', 'TYPE', 'AT', 'DELIVERIES'],
      ...page.data.map((e) => [
        e.id,
        e.type,
        isoTime(e.createdAt),
        e.deliveries.map((d) => `${d.status}${d.attempts > 1 ? ` (${d.attempts} tries)` : ''}`).join(', ') ||
          '-',
      ]),
    ]);
    return page.nextCursor ? [...rows, `more: --cursor ${page.nextCursor}`] : rows;
  });
}

/** `veil events redeliver`: sends an event again to every endpoint that wants it, same webhook-id. */
export async function redeliver(id: string, out: Output): Promise<void> {
  const event = await withVeil(cliConfig(), (veil) => veil.webhooks.redeliver(DEFAULT_TENANT, id));
  out.result(eventView(event), () =>
    event.deliveries.length === 0
      ? `${id}: no endpoint wants it`
      : `${id} will be sent again to ${event.deliveries.length} endpoint(s), with the same webhook-id`,
  );
}
