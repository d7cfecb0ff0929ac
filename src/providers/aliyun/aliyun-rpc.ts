import { createHmac, randomUUID } from 'node:crypto';

/**
 * Alibaba Cloud's RPC-style API (POP), signature version 1.0: every request carries the common
 * parameters (AccessKeyId, SignatureMethod HMAC-SHA1, SignatureVersion 1.0, a fresh SignatureNonce,
 * a UTC Timestamp, Format JSON, the API's Version) and a Signature over all of its parameters:
 * Base64(HMAC-SHA1(secret + '&', 'POST&%2F&' + encode(canonicalized query))), the parameters
 * sorted by name and percent-encoded as POP does (RFC 3986: encodeURIComponent, and `!'()*` too).
 */

/** Percent-encoding as Alibaba's POP spec writes it: only A-Z a-z 0-9 - _ . ~ stay as they are. */
export function popEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The canonicalized query: parameters sorted by name (byte order), each `name=value` encoded, joined by `&`. */
export function canonicalQuery(params: Readonly<Record<string, string>>): string {
  return Object.keys(params)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((k) => `${popEncode(k)}=${popEncode(params[k] as string)}`)
    .join('&');
}

/** The Signature of a request's parameters (Signature itself excluded) for `method`. */
export function popSignature(
  method: string,
  params: Readonly<Record<string, string>>,
  secret: string,
): string {
  const stringToSign = `${method}&${popEncode('/')}&${popEncode(canonicalQuery(params))}`;
  return createHmac('sha1', `${secret}&`).update(stringToSign).digest('base64');
}

export interface RpcCredentials {
  accessKeyId: string;
  accessKeySecret: string;
}

/** The parameters of one signed request: the action's own plus the common ones and the Signature. */
export function signedParameters(
  credentials: RpcCredentials,
  version: string,
  action: string,
  params: Readonly<Record<string, string>>,
  now = new Date(),
): Record<string, string> {
  const all: Record<string, string> = {
    ...params,
    Action: action,
    Version: version,
    Format: 'JSON',
    AccessKeyId: credentials.accessKeyId,
    SignatureMethod: 'HMAC-SHA1',
    SignatureVersion: '1.0',
    SignatureNonce: randomUUID(),
    // ISO 8601 in UTC, to the second.
    Timestamp: `${now.toISOString().slice(0, 19)}Z`,
  };
  return { ...all, Signature: popSignature('POST', all, credentials.accessKeySecret) };
}
