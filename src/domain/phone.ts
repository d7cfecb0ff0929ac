import { type CountryCode, parsePhoneNumberFromString } from 'libphonenumber-js';
import { InvalidRequestError } from './errors.ts';

/** A phone number in E.164 form with what allocation needs to know about it. */
export interface PhoneNumber {
  /** E.164, e.g. `+14155550100`. */
  readonly e164: string;
  /** ISO 3166-1 alpha-2 country, e.g. `US`. */
  readonly country: string;
  /** Area code or leading national group (`415`, `20` for London); '' when the number has none. */
  readonly region: string;
}

const E164 = /^\+[1-9]\d{6,14}$/;

/**
 * Parses a number given by a client. E.164 is always accepted; other forms only when a default
 * country is configured. Throws InvalidRequestError naming `field`, never echoing the number.
 */
export function parsePhone(input: string, field: string, defaultCountry?: string): PhoneNumber {
  const text = typeof input === 'string' ? input.trim() : '';
  if (!text.startsWith('+') && !defaultCountry) {
    throw new InvalidRequestError(`${field} must be an E.164 number: + then country code and number`, field);
  }
  const parsed = parsePhoneNumberFromString(text, defaultCountry as CountryCode | undefined);
  if (!parsed?.isValid() || !parsed.country || !E164.test(parsed.number)) {
    throw new InvalidRequestError(`${field} is not a valid phone number`, field);
  }
  return { e164: parsed.number, country: parsed.country, region: regionOf(parsed.formatInternational()) };
}

/** The first national group of the international format: the area code where the plan has one. */
function regionOf(international: string): string {
  const groups = international.split(' ');
  return groups.length > 2 ? (groups[1] ?? '') : '';
}

/** True when `text` is already in canonical E.164 form (a cheap check for the routing hot path). */
export function isE164(text: string): boolean {
  return E164.test(text);
}

/**
 * How a real number appears in logs and messages: `+1415*****02`. At least half the digits are
 * hidden, however short the number.
 */
export function maskNumber(number: string): string {
  const plus = number.startsWith('+') ? '+' : '';
  const digits = number.slice(plus.length);
  if (digits.length < 6) return plus + '*'.repeat(digits.length);
  const head = digits.length >= 11 ? 4 : digits.length >= 9 ? 3 : 2;
  return plus + digits.slice(0, head) + '*'.repeat(digits.length - head - 2) + digits.slice(-2);
}

// The shape of a phone number anywhere in a log line, not part of a longer token (ids, hex):
// 7-15 digits after '+' or a URL-encoded '%2B' (any case), or a bare run of 10-15 digits.
const NUMBER_IN_TEXT = /(?<![\w-])(?:(\+|%2[Bb])(\d{7,15})|(\d{10,15}))(?![\w-])/g;

/** Masks everything that looks like a phone number in free text (log lines, error messages). */
export function maskNumbersInText(text: string): string {
  return text.replace(
    NUMBER_IN_TEXT,
    (_m, prefix: string | undefined, prefixed: string | undefined, bare: string | undefined) => {
      if (bare !== undefined) return maskNumber(bare);
      const masked = maskNumber(`+${prefixed}`);
      return prefix === '+' ? masked : `${prefix}${masked.slice(1)}`;
    },
  );
}
