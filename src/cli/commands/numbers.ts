import { InvalidRequestError } from '../../domain/errors.ts';
import { maskNumber, parsePhone } from '../../domain/phone.ts';
import type { NumberStatus, PoolNumber } from '../../domain/pool.ts';
import { DEFAULT_TENANT } from '../../domain/tenants.ts';
import { MAX_PURCHASE } from '../../providers/procurement.ts';
import type { NumberInput } from '../../services/numbers.ts';
import type { PurchaseOrder } from '../../services/procurement.ts';
import type { Veil } from '../../veil.ts';
import { numberView } from '../../views.ts';
import { cliConfig, withVeil } from '../core.ts';
import {
  channelsOption,
  idArgument,
  integerOption,
  maxLength,
  tagsOption,
  withoutUndefined,
} from '../input.ts';
import { CliError, type Output, table } from '../output.ts';

export interface AddOptions {
  provider: string;
  region?: string;
  tag: string[];
  maxSessions?: string;
  capabilities?: string;
}

export interface ListOptions {
  status?: NumberStatus;
  provider?: string;
  country?: string;
  limit: string;
  cursor?: string;
}

/** `veil numbers add`: one proxy number into the pool (the service checks the provider). */
export async function add(number: string, options: AddOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const input = withoutUndefined({
    number: parsePhone(number, 'number', config.defaultCountry).e164,
    provider: options.provider,
    region: maxLength(options.region, '--region', 16),
    tags: tagsOption(options.tag),
    maxSessions: integerOption(options.maxSessions, '--max-sessions', 1, 1_000_000),
    capabilities: channelsOption(options.capabilities),
  }) as NumberInput;
  const added = await withVeil(config, (veil) => veil.numbers.add(DEFAULT_TENANT, input));
  out.result(numberView(added), () => `added ${added.number} (${added.id}): ${summary(added)}`);
}

export interface ImportOptions {
  provider: string;
  country: string;
  areaCode?: string;
  count: string;
  json?: boolean;
}

/**
 * `veil numbers import`: buys numbers through the carrier's API into the pool, a line for each
 * number as it is bought (on stderr with --json, whose stdout is the one result document).
 */
export async function buy(options: ImportOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const count = integerOption(options.count, '--count', 1, MAX_PURCHASE) as number;
  const order = withoutUndefined({
    provider: options.provider,
    country: options.country.toUpperCase(),
    areaCode: options.areaCode,
    count,
  }) as PurchaseOrder;
  const progress = (line: string) => (options.json ? process.stderr : process.stdout).write(`${line}\n`);
  const result = await withVeil(config, (veil) =>
    veil.procurement.buy(DEFAULT_TENANT, order, (n, done, requested) =>
      progress(`bought ${done}/${requested}: ${n.number} (${n.id})`),
    ),
  );
  const bought = result.numbers.length;
  out.result(
    {
      data: result.numbers.map(numberView),
      nextCursor: null,
      purchase: withoutUndefined({ requested: result.requested, bought, problem: result.problem }),
    },
    () => [
      `added ${bought} of ${result.requested} numbers from ${order.provider} to the pool`,
      ...(result.problem ? [`stopped short: ${result.problem}`] : []),
    ],
  );
}

/** `veil numbers list`: a page of the pool, with each number's load. */
export async function list(options: ListOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const country = options.country?.toUpperCase();
  if (country !== undefined && !/^[A-Z]{2}$/.test(country)) {
    throw new InvalidRequestError('--country must be an ISO country code like US', 'country');
  }
  const limit = integerOption(options.limit, '--limit', 1, 500) as number;
  const page = await withVeil(config, (veil) =>
    veil.numbers.list(DEFAULT_TENANT, {
      status: options.status,
      provider: options.provider,
      country,
      cursor: options.cursor,
      limit,
    }),
  );
  out.result({ data: page.data.map(numberView), nextCursor: page.nextCursor }, () => {
    if (page.data.length === 0) return options.cursor ? 'no more numbers' : 'no numbers match';
    const rows = table([
      ['ID', 'NUMBER', 'PROVIDER', 'COUNTRY', 'REGION', 'STATUS', 'LOAD', 'CAPABILITIES', 'TAGS'],
      ...page.data.map((n) => [
        n.id,
        n.number,
        n.provider,
        n.country,
        n.region || '-',
        n.status,
        `${n.load}/${n.maxSessions ?? '-'}`,
        n.capabilities.join(','),
        tagText(n.tags),
      ]),
    ]);
    return page.nextCursor ? [...rows, `more: add --cursor ${page.nextCursor}`] : rows;
  });
}

/** `veil numbers retire`: drain, then retire once no open session holds the number. */
export async function retire(ref: string, out: Output): Promise<void> {
  const config = cliConfig();
  const target = ref.startsWith('num_')
    ? { id: idArgument(ref, 'num', 'number') }
    : { number: parsePhone(ref, 'number', config.defaultCountry).e164 };
  const { before, after } = await withVeil(config, async (veil) => {
    const id = target.id ?? (await idOfNumber(veil, target.number as string));
    const before = await veil.numbers.get(DEFAULT_TENANT, id);
    return { before, after: await veil.numbers.retire(DEFAULT_TENANT, id) };
  });
  out.result(numberView(after), () => {
    const which = `${after.number} (${after.id})`;
    if (before.status === 'retired') return `${which} was already retired`;
    if (after.status === 'retired') return `retired ${which}`;
    const sessions = after.load === 1 ? 'its open session ends' : `its ${after.load} open sessions end`;
    return `draining ${which}: no new sessions; it retires when ${sessions}`;
  });
}

/** The id of a pool number of the CLI's tenant, found by the number itself. */
async function idOfNumber(veil: Veil, number: string): Promise<string> {
  const found = await veil.numbers.findByNumber(DEFAULT_TENANT, number);
  if (!found) {
    throw new CliError('not_found', `${maskNumber(number)} is not in the pool`);
  }
  return found.id;
}

function summary(n: PoolNumber): string {
  const parts = [
    n.provider,
    n.region ? `${n.country} region ${n.region}` : n.country,
    n.capabilities.join('+'),
    n.maxSessions === null ? 'no session cap' : `at most ${n.maxSessions} open sessions`,
  ];
  if (Object.keys(n.tags).length > 0) parts.push(`tags ${tagText(n.tags)}`);
  return parts.join(', ');
}

function tagText(tags: Record<string, string>): string {
  const text = Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return text || '-';
}
