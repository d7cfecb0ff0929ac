/**
 * The dashboard's number masking: the rule of src/domain/phone.ts maskNumber, mirrored for the
 * browser (test/http/admin-mask.test.ts holds the two to the same answers). A real number is
 * never put on the page in clear.
 */

/** `+1415*****02`: the country code or area and the last two digits; at least half hidden. */
export function maskNumber(number) {
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

function digitsInSight(count) {
  if (count < 6) return [0, 0];
  return [count >= 11 ? 4 : count >= 9 ? 3 : 2, 2];
}

// E.164 numbers, or a bare run of 7 digits or more, not part of a longer token (ids, hex).
const NUMBER_IN_TEXT = /(?<![\w-])\+?\d{7,15}(?![\w-])/g;

/** Masks every number-like run of digits in free text (an event's summary). */
export function maskNumbersInText(text) {
  return text.replace(NUMBER_IN_TEXT, (found) => maskNumber(found));
}

/**
 * A number as the page shows it: in clear only when it is one of `proxies` (the pool's own
 * numbers, which are nobody's), masked otherwise.
 */
export function shown(number, proxies) {
  if (number === null || number === undefined) return '';
  return proxies.has(number) ? number : maskNumber(number);
}
