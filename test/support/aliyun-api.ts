import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The test account: what a fake expects requests to be signed with, and the pool they name. */
export const ALIYUN_KEY_ID = 'LTAI5tFakeAccessKeyId';
export const ALIYUN_KEY_SECRET = 'fake-access-key-secret-0123456789';
export const ALIYUN_POOL_KEY = 'FC100000012345678';

/** The environment that enables the aliyun carrier against `fake` (the test account, short calls). */
export function aliyunEnv(fake: FakeAliyunPns): Record<string, string> {
  return {
    ALIYUN_ACCESS_KEY_ID: ALIYUN_KEY_ID,
    ALIYUN_ACCESS_KEY_SECRET: ALIYUN_KEY_SECRET,
    ALIYUN_PNS_POOL_KEY: ALIYUN_POOL_KEY,
    ALIYUN_PNS_URL: fake.url,
    ALIYUN_PNS_TIMEOUT_MS: '300',
  };
}

/** How the fake answers one call: OK, an error Code, a bare 5xx, never, or only once told to. */
export type Plan =
  | { kind: 'ok' }
  | { kind: 'code'; code: string }
  | { kind: 'status'; status: number }
  | { kind: 'hang' }
  | { kind: 'late'; until: Promise<void> };

/** A call the fake took (signature good): its action and parameters. */
export interface PnsCall {
  action: string;
  params: Record<string, string>;
}

/**
 * A local stand-in for Alibaba Cloud's Phone Number Protection API (Dyplsapi 2017-05-25), RPC
 * style: a POST to `/` whose form parameters carry the action and the common parameters, signed as
 * Alibaba documents (HMAC-SHA1 with `secret&` over `POST&%2F&` and the percent-encoded sorted
 * query), checked here by an implementation of its own. `BindAxb` answers
 * `{Code: "OK", SecretBindDTO: {SubsId, SecretNo}}`; `UnbindSubscription` of an unknown SubsId
 * answers `isv.SUBS_NOT_EXIST`. Each call takes the next plan (`ok` when none is left).
 */
export class FakeAliyunPns {
  readonly calls: PnsCall[] = [];
  /** Requests refused for their signature or missing parameters. */
  readonly refused: string[] = [];
  /** Bindings the fake holds, by SubsId. */
  readonly bindings = new Map<string, { a: string; b: string; x: string; expiration: string }>();
  private plans: Plan[] = [];
  private nextSubsId = 1000000768790000n;
  private readonly nonces = new Set<string>();
  private readonly hanging = new Set<ServerResponse>();
  private server: Server | undefined;
  url = '';

  constructor(
    private readonly accessKeyId: string,
    private readonly secret: string,
    private readonly poolKey: string,
  ) {}

  /** The plans of the next calls, in order. */
  plan(...plans: Plan[]): void {
    this.plans.push(...plans);
  }

  of(action: string): PnsCall[] {
    return this.calls.filter((c) => c.action === action);
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of request) body += chunk;
    const params = Object.fromEntries(new URLSearchParams(body));
    const problem = request.method !== 'POST' ? 'method' : this.checkSignature(params);
    if (problem) {
      this.refused.push(problem);
      return send(response, 400, { Code: problem, Message: problem });
    }
    const { Action: action = '' } = params;
    this.calls.push({ action, params });
    const plan = this.plans.shift() ?? { kind: 'ok' };
    if (plan.kind === 'hang') {
      this.hanging.add(response);
      return;
    }
    if (plan.kind === 'late') await plan.until;
    if (plan.kind === 'status') {
      response.writeHead(plan.status, { 'content-type': 'text/plain' });
      response.end('Service Unavailable');
      return;
    }
    if (plan.kind === 'code') return send(response, 200, { Code: plan.code, Message: 'refused' });
    if (params.PoolKey !== this.poolKey) return send(response, 200, { Code: 'isv.POOLKEY_NOT_EXISTS' });
    if (action === 'BindAxb') {
      const { PhoneNoA: a = '', PhoneNoB: b = '', PhoneNoX: x = '', Expiration: expiration = '' } = params;
      if (![a, b, x].every((n) => /^\d{5,15}$/.test(n))) {
        return send(response, 200, { Code: 'isv.MOBILE_NUMBER_ILLEGAL' });
      }
      if (!/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(expiration)) {
        return send(response, 200, { Code: 'isv.EXPIRE_DATE_ILLEGAL' });
      }
      this.nextSubsId += 1n;
      const subsId = String(this.nextSubsId);
      this.bindings.set(subsId, { a, b, x, expiration });
      return send(response, 200, {
        Code: 'OK',
        Message: 'OK',
        RequestId: 'fake',
        SecretBindDTO: { SubsId: subsId, SecretNo: x, Extension: '' },
      });
    }
    if (action === 'UnbindSubscription') {
      const binding = this.bindings.get(params.SubsId ?? '');
      if (!binding || binding.x !== params.SecretNo)
        return send(response, 200, { Code: 'isv.SUBS_NOT_EXIST' });
      this.bindings.delete(params.SubsId ?? '');
      return send(response, 200, { Code: 'OK', Message: 'OK', RequestId: 'fake' });
    }
    return send(response, 404, { Code: 'InvalidAction.NotFound' });
  }

  /** What is wrong with the request's signature or common parameters, or undefined. */
  private checkSignature(params: Record<string, string>): string | undefined {
    const { Signature: signature, ...signed } = params;
    if (!signature) return 'MissingSignature';
    if (signed.AccessKeyId !== this.accessKeyId) return 'InvalidAccessKeyId.NotFound';
    if (signed.SignatureMethod !== 'HMAC-SHA1' || signed.SignatureVersion !== '1.0') {
      return 'InvalidSignatureMethod';
    }
    if (signed.Format !== 'JSON' || signed.Version !== '2017-05-25') return 'InvalidVersion';
    const at = Date.parse(signed.Timestamp ?? '');
    if (!/Z$/.test(signed.Timestamp ?? '') || !(Math.abs(Date.now() - at) < 15 * 60_000)) {
      return 'InvalidTimeStamp.Expired';
    }
    const nonce = signed.SignatureNonce ?? '';
    if (!nonce || this.nonces.has(nonce)) return 'SignatureNonceUsed';
    const query = Object.keys(signed)
      .sort()
      .map((k) => `${rfc3986(k)}=${rfc3986(signed[k] ?? '')}`)
      .join('&');
    const expected = createHmac('sha1', `${this.secret}&`)
      .update(`POST&${rfc3986('/')}&${rfc3986(query)}`)
      .digest();
    const given = Buffer.from(signature, 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'SignatureDoesNotMatch';
    this.nonces.add(nonce);
    return undefined;
  }
}

/** RFC 3986 percent-encoding, byte by byte: only unreserved characters stay. */
function rfc3986(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}
