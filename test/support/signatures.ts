import {
  createHash,
  createHmac,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  randomUUID,
  sign,
} from 'node:crypto';

/**
 * How Plivo, Vonage and Telnyx sign their webhooks, written once for the tests (test/support/plivo.ts,
 * vonage.ts, telnyx.ts) and the benchmark (bench/sections/carriers.ts). Twilio's is the `twilio`
 * package's own `getExpectedTwilioSignature`. Nothing here knows the test app.
 */

/**
 * X-Plivo-Signature-V3 of a POST, computed as the `plivo` package's validateV3Signature checks it
 * (dist/utils/v3Security.js; the package exports no signing function): base64 HMAC-SHA256, keyed
 * with the auth token, of
 * `scheme://host[:port]/path` + `?` + the query's `name=value` pairs sorted and joined by `&`
 * (a `.` after them when there are POST parameters too) + each POST parameter's name and value,
 * sorted by name, run together + `.` + the nonce. (`?` only when there is a query or a parameter.)
 * test/http/webhooks/plivo.test.ts holds the package's check to it.
 */
export function plivoSignatureV3(
  token: string,
  url: string,
  params: Record<string, string>,
  nonce: string,
): string {
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

/** What a Vonage webhook token says and how it is signed. */
export interface VonageTokenOptions {
  /** The account's signature secret. */
  secret: string;
  /** The account's API key, in the `api_key` claim. */
  apiKey: string;
  /** When the token was issued, in ms (default: now). */
  at?: number;
  /** The token's expiry, in ms; none by default, as Vonage sends none. */
  expires?: number;
  /** The body the payload_hash is of (default: the one sent); null for no payload_hash claim. */
  signedBody?: string | null;
  alg?: 'HS256' | 'HS512' | 'none';
}

/**
 * A JWT as Vonage signs its webhooks: HS256 over the claims with the signature secret. Written
 * with node:crypto, independently of the `@vonage/jwt` (jsonwebtoken) check it meets: the
 * package signs only RS256 application tokens, not HS256 webhook ones.
 */
export function vonageToken(rawBody: string, options: VonageTokenOptions): string {
  const alg = options.alg ?? 'HS256';
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signedBody = options.signedBody === undefined ? rawBody : options.signedBody;
  const claims = {
    iat: Math.floor((options.at ?? Date.now()) / 1000),
    jti: randomUUID(),
    iss: 'Vonage',
    ...(signedBody === null ? {} : { payload_hash: createHash('sha256').update(signedBody).digest('hex') }),
    api_key: options.apiKey,
    application_id: 'aaaaaaaa-bbbb-cccc-dddd-0123456789ab',
    ...(options.expires === undefined ? {} : { exp: Math.floor(options.expires / 1000) }),
  };
  const unsigned = `${encode({ alg, typ: 'JWT' })}.${encode(claims)}`;
  if (alg === 'none') return `${unsigned}.`;
  const hash = alg === 'HS256' ? 'sha256' : 'sha512';
  const signature = createHmac(hash, options.secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** An Ed25519 key pair as Telnyx holds one: the private key signs, the portal shows the public key in base64. */
export function telnyxKeyPair(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // The raw 32 bytes are the JWK's x; the portal shows them in standard base64.
  const x = publicKey.export({ format: 'jwk' }).x ?? '';
  return { privateKey, publicKey: Buffer.from(x, 'base64url').toString('base64') };
}

/** The base64 Ed25519 signature Telnyx sends over `<timestamp>|<raw body>`. */
export function telnyxSignature(key: KeyObject, timestamp: string, rawBody: string): string {
  return sign(null, Buffer.from(`${timestamp}|${rawBody}`), key).toString('base64');
}
