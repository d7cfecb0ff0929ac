/**
 * URLs of media that Veil passes on but never fetches: the pictures of an MMS and a call's
 * recording. The carrier (or the app, through /v1/route) gives them; the log keeps them. What is
 * kept is bounded, and only a plain http(s) URL is kept at all: anything else (a `javascript:` or
 * `file:` URL, a string with spaces or control characters) is not something to hand a carrier.
 */

/** Most media one message carries: Twilio's limit, and the most Veil relays in one text. */
export const MAX_MEDIA = 10;
/** The longest media or recording URL kept (carriers' own URLs are a fraction of this). */
export const MAX_MEDIA_URL_LENGTH = 2048;
/**
 * An http(s) URL with a host and no whitespace or control character, as a pattern the API's
 * schema (src/http/schemas.ts) shares with isMediaUrl.
 */
export const MEDIA_URL_PATTERN = '^https?://[^\\u0000-\\u0020\\u007F/?#]+[^\\u0000-\\u0020\\u007F]*$';

const MEDIA_URL = new RegExp(MEDIA_URL_PATTERN, 'u');

/** Whether `value` is a media URL Veil keeps and passes on. */
export function isMediaUrl(value: string): boolean {
  return value.length <= MAX_MEDIA_URL_LENGTH && MEDIA_URL.test(value);
}

/**
 * A message's media as kept: the URLs that are media URLs, in order, at most MAX_MEDIA of them.
 * The rest are dropped rather than failing the message: its text still reaches the other side.
 */
export function mediaUrls(values: Iterable<unknown>): string[] {
  const kept: string[] = [];
  for (const value of values) {
    if (kept.length === MAX_MEDIA) break;
    if (typeof value === 'string' && isMediaUrl(value)) kept.push(value);
  }
  return kept;
}
