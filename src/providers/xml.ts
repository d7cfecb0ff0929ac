/**
 * The few XML documents Veil answers carriers with (TwiML, Plivo XML), written directly. They are
 * byte for byte what the carriers' own packages build (both on xmlbuilder; test/providers holds
 * each package as the oracle), without building an XML DOM on every call: on the webhook path that
 * DOM cost more than the route itself, mostly in garbage.
 *
 * Unlike the builders, a text holding characters XML cannot carry (control characters, lone
 * surrogates) is not refused: those characters are dropped, so a text message with a stray control
 * character is still delivered rather than failing the webhook.
 */

const PROLOG = '<?xml version="1.0" encoding="UTF-8"?>';

/** One element: attributes in the order given (undefined ones left out), text or children inside. */
export function element(
  name: string,
  attributes: Record<string, string | number | undefined> = {},
  content = '',
): string {
  let open = `<${name}`;
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined) open += ` ${key}="${escapeAttribute(String(value))}"`;
  }
  return content === '' ? `${open}/>` : `${open}>${content}</${name}>`;
}

/** Text content, escaped as the builders escape it. */
export function text(value: string): string {
  return legal(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\r/g, '&#xD;');
}

/** A whole document: the prolog, then <Response> holding `content` (the root of TwiML and Plivo XML alike). */
export function response(content = ''): string {
  return PROLOG + element('Response', {}, content);
}

function escapeAttribute(value: string): string {
  return legal(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/"/g, '&quot;')
    .replace(/\t/g, '&#x9;')
    .replace(/\n/g, '&#xA;')
    .replace(/\r/g, '&#xD;');
}

/** Characters outside XML 1.0's Char production: C0 controls but tab and newlines, U+FFFE/F, lone surrogates. */
const ILLEGAL = new RegExp(
  '[\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\uFFFE\\uFFFF]' +
    '|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]',
  'g',
);

function legal(value: string): string {
  return value.replace(ILLEGAL, '');
}
