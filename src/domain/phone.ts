import { type CountryCode, findPhoneNumbersInText, parsePhoneNumberFromString } from 'libphonenumber-js';
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
 * How a real number appears in logs and messages: `+1415*****02`. At least half the national
 * number is hidden, however short the number.
 */
export function maskNumber(number: string): string {
  const plus = number.startsWith('+') ? '+' : '';
  const digits = number.slice(plus.length);
  const [head, tail] = digitsInSight(digits.length);
  return (
    plus +
    digits.slice(0, head) +
    '*'.repeat(digits.length - head - tail) +
    digits.slice(digits.length - tail)
  );
}

/**
 * How many of a number's first and last digits its mask leaves in sight: the country code or area
 * and the last two, so at least half the national number is hidden; none of a number under 6 digits.
 */
function digitsInSight(count: number): [head: number, tail: number] {
  if (count < 6) return [0, 0];
  return [count >= 11 ? 4 : count >= 9 ? 3 : 2, 2];
}

// The shape of a phone number anywhere in a log line, not part of a longer token (ids, hex):
// 7-15 digits after '+' or a URL-encoded '%2B' (any case), or a bare run of 10-15 digits. A bare
// run of 13 starting with 1 is epoch milliseconds (2001-2033): a number under country code 1 has 11.
const NUMBER_IN_TEXT = /(?<![\w-])(?:(\+|%2[Bb])(\d{7,15})|(?!1\d{12}(?!\d))(\d{10,15}))(?![\w-])/g;

// What may stand between a number's digits: spaces of any kind, dashes, dots, slashes, brackets,
// as written, URL-encoded (%20, %28, '+' for a space in a form) or JSON-escaped once or more (\n, \u00a0).
const GAP = String.raw`(?:[\s().\/\-\u2010-\u2015+]|%(?:09|2[0bd-f89]|c2%a0|e2%80%[89a][0-9a-f])|\\+(?:[nrt]|u(?:00a0|20[0-2][0-9a-f])))`;

// A stretch that may hold a formatted number, for libphonenumber to look at: a '+' (or %2B) and 7
// digits or more, or 10 digits or more (national, 00-prefixed) that are no part of a word, an id or
// a decimal. The lookahead spares the lookbehinds at every other character of a line.
const LED_BY_PLUS = String.raw`(?:\+|%2b)\(?\d(?:${GAP}{0,4}\d){6,}`;
const NATIONAL = String.raw`(?:(?<![\w.-])|(?<=\\[nrt]))(?:\(|%28)?\d(?:${GAP}{0,4}\d){9,}(?!\w)`;
const FORMATTED_NUMBER = new RegExp(String.raw`(?=[\d(%+])(?:${LED_BY_PLUS}|${NATIONAL})`, 'gi');

// The encodings and escapes FORMATTED_NUMBER lets through, and a leading 00, as the character they
// stand for (a space unless DECODED says otherwise). None stands for a digit: digits keep their order.
const ENCODED_SOURCE = String.raw`%(?:09|2[0bd-f89]|c2%a0|e2%80%[89a][0-9a-f])|\\+(?:[nrt]|u[0-9a-f]{4})|(?<=[\d)])\+|^00(?=[1-9])`;
const ENCODED = new RegExp(ENCODED_SOURCE, 'gi');
const ENCODED_OR_DIGIT = new RegExp(`${ENCODED_SOURCE}|\\d`, 'gi');
const DECODED: Record<string, string> = {
  '%2b': '+',
  '%28': '(',
  '%29': ')',
  '%2d': '-',
  '%2e': '.',
  '%2f': '/',
  '00': '+',
};

// Digits that are not a number when written without a '+': dates (with the time after them), IPv4.
const NOT_A_NUMBER = /^(?:\d{4}([-/.])\d\d?\1\d\d?|\d\d?([-/.])\d\d?\2\d{4}|\d{1,3}(?:\.\d{1,3}){3}(?!\d))/;

// Log lines carry no country: national numbers are read as American ones (NANP, the
// service's first market); numbers under any other country code need their '+' or 00.
const NATIONAL_COUNTRY: CountryCode = 'US';

/**
 * Masks everything that looks like a phone number in free text (log lines, error messages): the
 * digits of E.164 and bare digit runs, and of every number libphonenumber finds however it is
 * written (`+1 (415) ***-**00`), URL-encoded or JSON-escaped. Punctuation stays, so the line still reads.
 */
export function maskNumbersInText(text: string): string {
  return text
    .replace(
      NUMBER_IN_TEXT,
      (_m, prefix: string | undefined, prefixed: string | undefined, bare: string | undefined) => {
        if (bare !== undefined) return maskNumber(bare);
        const masked = maskNumber(`+${prefixed}`);
        return prefix === '+' ? masked : `${prefix}${masked.slice(1)}`;
      },
    )
    .replace(FORMATTED_NUMBER, maskFormattedNumbers);
}

// libphonenumber's search slows faster than its text grows, seconds for a list of thousands of
// numbers: a stretch longer than a few numbers is masked whole instead.
const LONGEST_SEARCH = 100;

/**
 * Stars the digits of each number libphonenumber finds in `stretch` (any it finds possible, valid
 * or not). A stretch led by '+' that it cannot read is masked whole, as the E.164 pass would.
 */
function maskFormattedNumbers(stretch: string): string {
  const plain = stretch.replace(ENCODED, (code) => DECODED[code.toLowerCase()] ?? ' ');
  // A decimal (a duration in ms has 16 digits or so) is no number: not worth a search.
  if (/^\d+\.\d+$/.test(plain)) return stretch;
  const tooLong = plain.length > LONGEST_SEARCH;
  const numbers = tooLong ? [] : numbersIn(plain);
  if (numbers.length === 0 && (tooLong || plain.startsWith('+'))) numbers.push([0, countDigits(plain)]);
  const hidden = numbers.map(([first, count]): [number, number] => {
    const [head, tail] = digitsInSight(count);
    return [first + head, first + count - tail];
  });
  let digit = 0;
  return stretch.replace(ENCODED_OR_DIGIT, (token) => {
    if (!/^\d$/.test(token)) return token;
    const at = digit++;
    return hidden.some(([from, to]) => at >= from && at < to) ? '*' : token;
  });
}

/** The numbers libphonenumber finds in `text`, each as [its first digit's index, its digit count]. */
function numbersIn(text: string): [first: number, count: number][] {
  const numbers: [number, number][] = [];
  // extended: numbers of a possible length, valid or not (libphonenumber's POSSIBLE leniency).
  const options = { defaultCountry: NATIONAL_COUNTRY, extended: true };
  for (const { startsAt, endsAt } of findPhoneNumbersInText(text, options)) {
    const number = text.slice(startsAt, endsAt);
    if (number.startsWith('+') || !NOT_A_NUMBER.test(number))
      numbers.push([countDigits(text.slice(0, startsAt)), countDigits(number)]);
  }
  return numbers;
}

function countDigits(text: string): number {
  return text.replace(/\D/g, '').length;
}
