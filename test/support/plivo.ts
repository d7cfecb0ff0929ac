import { createHmac, randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { PUBLIC_URL, type TestApp } from './app.ts';

export const PLIVO_AUTH_ID = 'MA2025RK4E639VJFZAGV';
export const PLIVO_TOKEN = 'plivo-test-auth-token-0123456789abcdef';

/** The environment that enables Plivo in testApp. */
export const PLIVO_ENV = { PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN: PLIVO_TOKEN };

export type PlivoParams = Record<string, string>;

/**
 * X-Plivo-Signature-V3 of a POST, computed as the `plivo` package's validateV3Signature checks it
 * (dist/utils/v3Security.js; the package exports no signing function): base64 HMAC-SHA256, keyed
 * with the auth token, of
 * `scheme://host[:port]/path` + `?` + the query's `name=value` pairs sorted and joined by `&`
 * (a `.` after them when there are POST parameters too) + each POST parameter's name and value,
 * sorted by name, run together + `.` + the nonce. (`?` only when there is a query or a parameter.)
 * test/http/webhooks/plivo.test.ts holds the package's check to it.
 */
export function plivoSignatureV3(token: string, url: string, params: PlivoParams, nonce: string): string {
  const [, origin = '', path = '', query = ''] =
    /^([a-z]+:\/\/[^/?#]*)([^?#]*)(?:\?([^#]*))?/i.exec(url) ?? [];
  const byName = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(query))
    byName.set(name, [...(byName.get(name) ?? []), value]);
  const queryString = [...byName.keys()]
    .sort()
    .flatMap((name) => (byName.get(name) ?? []).sort().map((value) => `${name}=${value}`))
    .join('&');
  const names = Object.keys(params).sort();
  let base = origin + path;
  if (queryString || names.length > 0) base += `?${queryString}`;
  if (queryString && names.length > 0) base += '.';
  base += names.map((name) => name + params[name]).join('');
  return createHmac('sha256', token).update(`${base}.${nonce}`).digest('base64');
}

/** A nonce as Plivo sends one: a random string, new for every request. */
export function plivoNonce(): string {
  return randomBytes(10).toString('hex');
}

export interface PlivoSigning {
  /** The auth token to sign with (default: the configured one). */
  token?: string;
  /** The URL to sign (default: VEIL_PUBLIC_URL + the path requested). */
  signedUrl?: string;
  /** The params to sign (default: those sent). */
  signedParams?: PlivoParams;
  /** The nonce signed (default: the one sent). */
  signedNonce?: string;
  /** The nonce sent (default: a new one). */
  nonce?: string;
  /** Headers to send instead of, or beside, the computed ones. */
  headers?: Record<string, string | string[]>;
}

/**
 * A webhook as Plivo sends it: form-encoded, with X-Plivo-Signature-V3 and its nonce over
 * VEIL_PUBLIC_URL + path (with its query) and the params, unless 'unsigned'.
 */
export function postPlivo(
  t: TestApp,
  path: string,
  params: PlivoParams,
  signing: PlivoSigning | 'unsigned' = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string | string[]> = {
    'content-type': 'application/x-www-form-urlencoded',
  };
  if (signing !== 'unsigned') {
    const nonce = signing.nonce ?? plivoNonce();
    headers['x-plivo-signature-v3-nonce'] = nonce;
    headers['x-plivo-signature-v3'] = plivoSignatureV3(
      signing.token ?? PLIVO_TOKEN,
      signing.signedUrl ?? PUBLIC_URL + path,
      signing.signedParams ?? params,
      signing.signedNonce ?? nonce,
    );
    Object.assign(headers, signing.headers);
  }
  return t.app.inject({
    method: 'POST',
    url: path,
    headers,
    payload: new URLSearchParams(params).toString(),
  });
}

/** A number as Plivo writes it: E.164 without the `+`. */
export const plivoDigits = (number: string): string => number.replace(/^\+/, '');
