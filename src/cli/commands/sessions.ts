import { InvalidRequestError } from '../../domain/errors.ts';
import { maskNumber } from '../../domain/phone.ts';
import {
  MAX_PARTICIPANTS,
  MAX_TTL_SECONDS,
  normalizeSession,
  type Session,
  type SessionInput,
  type SessionStatus,
} from '../../domain/session.ts';
import { DEFAULT_TENANT } from '../../domain/tenants.ts';
import { sessionView } from '../../views.ts';
import { cliConfig, withVeil } from '../core.ts';
import { idArgument, integerOption, maxLength, withoutUndefined } from '../input.ts';
import { isoTime, type Output, table } from '../output.ts';

export interface CreateOptions {
  participant: string[];
  mode?: string;
  externalId?: string;
  ttl?: string;
}

export interface ListOptions {
  status?: SessionStatus;
  externalId?: string;
  limit: string;
  cursor?: string;
}

/** `veil sessions create`: a session between two people, each given a proxy number. */
export async function create(options: CreateOptions, out: Output): Promise<void> {
  const config = cliConfig();
  if (options.participant.length !== MAX_PARTICIPANTS) {
    throw new InvalidRequestError(
      'give --participant twice: a session is between two people',
      'participants',
    );
  }
  const input = withoutUndefined({
    participants: options.participant.map(participantOption),
    mode: options.mode,
    externalId: maxLength(options.externalId, '--external-id', 128),
    ttlSeconds: integerOption(options.ttl, '--ttl', 1, MAX_TTL_SECONDS),
  }) as SessionInput;
  // The domain's own validation, before the database is even opened: bad input writes nothing.
  inOptionTerms(() =>
    normalizeSession(
      input,
      { ttlSeconds: config.defaultTtlSeconds, defaultCountry: config.defaultCountry },
      Date.now(),
    ),
  );
  const { session, created } = await withVeil(config, (veil) => veil.sessions.create(DEFAULT_TENANT, input));
  out.result(sessionView(session), () => [
    ...details(session),
    ...(created
      ? tryIt(session)
      : [
          `  (already created with external id ${session.externalId} by the same request; it is ${session.status})`,
        ]),
  ]);
}

/** `veil sessions get`. */
export async function get(id: string, out: Output): Promise<void> {
  const config = cliConfig();
  const sessionId = idArgument(id, 'ses', 'session');
  const session = await withVeil(config, (veil) => veil.sessions.get(DEFAULT_TENANT, sessionId));
  out.result(sessionView(session), () => details(session));
}

/** `veil sessions close`: ended now, its proxies released. Closing an ended session changes nothing. */
export async function close(id: string, out: Output): Promise<void> {
  const config = cliConfig();
  const sessionId = idArgument(id, 'ses', 'session');
  const { before, after } = await withVeil(config, async (veil) => {
    const before = await veil.sessions.get(DEFAULT_TENANT, sessionId);
    return { before, after: await veil.sessions.close(DEFAULT_TENANT, sessionId) };
  });
  out.result(sessionView(after), () =>
    before.status === 'open'
      ? `${after.status} ${after.id}; its proxy numbers are released`
      : `${after.id} was already ${before.status}`,
  );
}

/** `veil sessions list`: newest first; real numbers masked, as the operator asked about none in particular. */
export async function list(options: ListOptions, out: Output): Promise<void> {
  const config = cliConfig();
  const limit = integerOption(options.limit, '--limit', 1, 500) as number;
  const page = await withVeil(config, (veil) =>
    veil.sessions.list(DEFAULT_TENANT, {
      status: options.status,
      externalId: options.externalId,
      cursor: options.cursor,
      limit,
    }),
  );
  out.result({ data: page.data.map(sessionView), nextCursor: page.nextCursor }, () => {
    if (page.data.length === 0) return options.cursor ? 'no more sessions' : 'no sessions match';
    const rows = table([
      ['ID', 'STATUS', 'MODE', 'EXPIRES', 'EXTERNAL ID', 'PARTICIPANTS'],
      ...page.data.map((s) => [
        s.id,
        s.status,
        s.mode,
        isoTime(s.expiresAt),
        s.externalId ?? '-',
        s.participants
          .map((p) => `${p.label ?? 'participant'} ${maskNumber(p.number)} via ${p.proxyNumber}`)
          .join(', '),
      ]),
    ]);
    return page.nextCursor ? [...rows, `more: add --cursor ${page.nextCursor}`] : rows;
  });
}

/** `+14155550101:customer` as a participant of the request. */
function participantOption(text: string): { number: string; label?: string } {
  const at = text.indexOf(':');
  const number = at < 0 ? text : text.slice(0, at);
  const label = at < 0 ? undefined : maxLength(text.slice(at + 1), '--participant label', 64);
  return label === undefined ? { number } : { number, label };
}

/** Runs `work`, restating the domain's field names (`participants/1/number`) as the options that set them. */
function inOptionTerms<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    const message = error.message
      .replace(/\bparticipants\/(\d+)\/number\b/g, (_m, i: string) => `--participant #${Number(i) + 1}`)
      .replace(/^ttlSeconds\b/, '--ttl')
      .replace(/^mode\b/, '--mode');
    throw new InvalidRequestError(message, error.field);
  }
}

/** A session for the operator who asked for it: their own participants' numbers in full. */
function details(s: Session): string[] {
  const facts = [
    ...(s.externalId !== null ? [['external id', s.externalId]] : []),
    [s.status === 'open' ? 'expires' : 'expiry', isoTime(s.expiresAt)],
    ...(s.closedAt !== null ? [['ended', isoTime(s.closedAt)]] : []),
  ];
  const people = s.participants.map((p, i) => [
    p.label ?? `participant ${i + 1}`,
    p.number,
    `proxy ${p.proxyNumber}`,
  ]);
  const width = Math.max(...[...facts, ...people].map(([label = '']) => label.length));
  const padded = (rows: string[][]) =>
    table(rows.map(([label = '', ...rest]) => [label.padEnd(width), ...rest]));
  return [
    `session ${s.id} (${s.status}, ${s.mode})`,
    ...[...padded(facts), ...padded(people)].map((l) => `  ${l}`),
  ];
}

/** The command that tries a new session out on the simulator. */
function tryIt(s: Session): string[] {
  const first = s.participants[0];
  return first ? [`  try: veil call --from ${first.number} --to ${first.proxyNumber}`] : [];
}
