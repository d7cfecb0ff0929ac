import { InvalidRequestError } from '../../domain/errors.ts';
import type { Interaction } from '../../domain/interaction.ts';
import { maskNumber } from '../../domain/phone.ts';
import { REJECT_REASONS } from '../../domain/routing.ts';
import { CHANNELS, type Channel } from '../../domain/session.ts';
import { DEFAULT_TENANT } from '../../domain/tenants.ts';
import { interactionView } from '../../views.ts';
import { cliConfig, withVeil } from '../core.ts';
import { integerOption } from '../input.ts';
import { isoTime, type Output, table } from '../output.ts';

const ACTIONS: readonly Interaction['action'][] = ['connect', 'forward', 'gather', 'reject'];

export interface ListOptions {
  action?: string;
  reason?: string;
  channel?: string;
  cursor?: string;
  limit: string;
}

/** An option's value when it is one of `allowed`; an InvalidRequestError naming the option otherwise. */
function oneOf<T extends string>(
  value: string | undefined,
  allowed: readonly T[],
  option: string,
): T | undefined {
  if (value === undefined || (allowed as readonly string[]).includes(value)) return value as T | undefined;
  throw new InvalidRequestError(`${option} must be one of ${allowed.join(', ')}`, option);
}

/**
 * `veil interactions list`: the call and text log across sessions, oldest first, strangers'
 * refused calls included (what `GET /v1/interactions` shows). The plain listing masks numbers;
 * `--json` gives them.
 */
export async function list(options: ListOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const limit = integerOption(options.limit, '--limit', 1, 500) as number;
  const filter = {
    action: oneOf(options.action, ACTIONS, '--action'),
    reason: oneOf(options.reason, REJECT_REASONS, '--reason'),
    channel: oneOf<Channel>(options.channel, CHANNELS, '--channel'),
    after: options.cursor,
  };
  const page = await withVeil(config, (veil) =>
    veil.sessions.interactionLog(DEFAULT_TENANT, { ...filter, limit }),
  );
  out.result({ data: page.data.map(interactionView), nextCursor: page.nextCursor }, () => {
    const rows =
      page.data.length === 0
        ? [page.nextCursor ? 'none in this stretch of the log' : 'none']
        : table([
            ['AT', 'CHANNEL', 'FROM', 'TO', 'ACTION', 'REASON', 'SESSION'],
            ...page.data.map((i) => [
              isoTime(i.createdAt),
              i.channel,
              maskNumber(i.from),
              maskNumber(i.to),
              i.action,
              i.reason ?? '-',
              i.sessionId ?? '-',
            ]),
          ]);
    return page.nextCursor ? [...rows, `more: --cursor ${page.nextCursor}`] : rows;
  });
}
