import { InvalidRequestError } from '../domain/errors.ts';
import { CHANNELS, type Channel } from '../domain/session.ts';

/**
 * Options as the services take them. The services validate what they are given (numbers, modes,
 * lifetimes); these parse the command line's text and hold it to the limits the HTTP API's schemas
 * set (src/http/schemas.ts), so the CLI stores nothing the API could not.
 */

/** Commander's collector for an option that may be given several times. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A whole number option within bounds; undefined when the option was not given. */
export function integerOption(
  text: string | undefined,
  option: string,
  min: number,
  max: number,
): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new InvalidRequestError(`${option} must be a whole number from ${min} to ${max}`, option);
  }
  return Number(text);
}

/** A text option of at most `max` characters (and at least one); undefined when not given. */
export function maxLength(text: string | undefined, option: string, max: number): string | undefined {
  if (text === undefined) return undefined;
  if (text.length === 0 || text.length > max) {
    throw new InvalidRequestError(`${option} must be 1 to ${max} characters`, option);
  }
  return text;
}

/** `--tag city=sf --tag tier=gold` as the tags object the API takes. */
export function tagsOption(list: string[]): Record<string, string> | undefined {
  if (list.length === 0) return undefined;
  const tags: Record<string, string> = {};
  for (const item of list) {
    const at = item.indexOf('=');
    if (at <= 0) throw new InvalidRequestError('--tag must be key=value, e.g. --tag city=sf', '--tag');
    const key = item.slice(0, at);
    const value = item.slice(at + 1);
    if (key.length > 64 || value.length > 256) {
      throw new InvalidRequestError('--tag keys are at most 64 characters, values at most 256', '--tag');
    }
    tags[key] = value;
  }
  return tags;
}

/** `voice,sms` as a list of channels; anything else is refused rather than dropped. */
export function channelsOption(text: string | undefined): Channel[] | undefined {
  if (text === undefined) return undefined;
  const list = text.split(',').map((c) => c.trim());
  if (list.some((c) => !CHANNELS.includes(c as Channel))) {
    throw new InvalidRequestError('--capabilities must be voice, sms or voice,sms', '--capabilities');
  }
  return [...new Set(list)] as Channel[];
}

/**
 * Refuses what does not look like an id of the kind asked for, before any lookup: a not-found
 * message then only ever repeats an id, never whatever else (a phone number) was typed.
 */
export function idArgument(text: string, prefix: string, what: string): string {
  if (!new RegExp(`^${prefix}_[A-Za-z0-9]{1,60}$`).test(text)) {
    throw new InvalidRequestError(`that is not a ${what} id (${prefix}_...)`, 'id');
  }
  return text;
}

/** The object without its undefined fields. */
export function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
