import type { LightMyRequestResponse } from 'fastify';
import { PUBLIC_URL, type TestApp } from './app.ts';
import { plivoNonce, plivoSignatureV3 } from './signatures.ts';

export { plivoNonce, plivoSignatureV3 };

export const PLIVO_AUTH_ID = 'MA2025RK4E639VJFZAGV';
export const PLIVO_TOKEN = 'plivo-test-auth-token-0123456789abcdef';

/** The environment that enables Plivo in testApp. */
export const PLIVO_ENV = { PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN: PLIVO_TOKEN };

export type PlivoParams = Record<string, string>;

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
