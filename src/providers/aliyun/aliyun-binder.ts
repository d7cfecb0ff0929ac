import { parsePhoneNumberFromString } from 'libphonenumber-js';
import { BindError, type Binder, type BindRequest } from '../binder.ts';
import { canonicalQuery, type RpcCredentials, signedParameters } from './aliyun-rpc.ts';

/** The Phone Number Protection API (Dyplsapi) version whose BindAxb and UnbindSubscription Veil calls. */
export const PNS_API_VERSION = '2017-05-25';
/** Where the PNS API is reached. */
export const DEFAULT_ALIYUN_PNS_URL = 'https://dyplsapi.aliyuncs.com/';
/** How long one call may take before it counts as failed (and is tried again later). */
export const DEFAULT_ALIYUN_TIMEOUT_MS = 5_000;

/** Alibaba's answer: Code "OK", or an error code (isv.NO_AVAILABLE_NUMBER, isv.BIND_CONFLICT…). */
interface PnsAnswer {
  Code?: string;
  Message?: string;
  SecretBindDTO?: { SubsId?: string | number; SecretNo?: string };
}

/** The code of a binding the carrier no longer has: an unbind of it is done already. */
const GONE = 'isv.SUBS_NOT_EXIST';

export interface AliyunOptions extends RpcCredentials {
  poolKey: string;
  /** Base URL of the API (its root path takes every action). */
  url: string;
  timeoutMs?: number;
}

/**
 * Alibaba Cloud Phone Number Protection, AXB: `BindAxb` (PoolKey, PhoneNoA, PhoneNoB, PhoneNoX,
 * Expiration) answers the binding's SubsId; `UnbindSubscription` (PoolKey, SubsId, SecretNo) undoes
 * it. Over `fetch`, signed with the account's AccessKey (aliyun-rpc.ts), each call bounded in time.
 */
export class AliyunBinder implements Binder {
  readonly name = 'aliyun';
  private readonly timeoutMs: number;

  constructor(private readonly options: AliyunOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ALIYUN_TIMEOUT_MS;
  }

  async bind(request: BindRequest): Promise<{ ref: string }> {
    const [a, b] = request.people;
    const answer = await this.call('BindAxb', {
      PoolKey: this.options.poolKey,
      PhoneNoA: pnsNumber(a),
      PhoneNoB: pnsNumber(b),
      PhoneNoX: pnsNumber(request.proxyNumber),
      Expiration: pnsTime(request.expiresAt),
      IsRecordingEnabled: String(request.record),
    });
    const ref = answer.SecretBindDTO?.SubsId;
    if (ref === undefined || ref === '') throw new BindError('answer without SecretBindDTO.SubsId');
    return { ref: String(ref) };
  }

  async unbind(ref: string, proxyNumber: string): Promise<void> {
    try {
      await this.call('UnbindSubscription', {
        PoolKey: this.options.poolKey,
        SubsId: ref,
        SecretNo: pnsNumber(proxyNumber),
      });
    } catch (error) {
      if (!(error instanceof BindError && error.message === GONE)) throw error;
    }
  }

  private async call(action: string, params: Record<string, string>): Promise<PnsAnswer> {
    const body = canonicalQuery(signedParameters(this.options, PNS_API_VERSION, action, params));
    let response: Response;
    try {
      response = await fetch(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw new BindError((error as Error).name === 'TimeoutError' ? 'timeout' : 'unreachable');
    }
    let answer: PnsAnswer | undefined;
    try {
      answer = (await response.json()) as PnsAnswer;
    } catch (error) {
      if ((error as Error).name === 'TimeoutError') throw new BindError('timeout');
    }
    // The code is the carrier's own word for what went wrong, and names no number.
    const code = typeof answer?.Code === 'string' ? answer.Code.replace(/[^\w.-]/g, '').slice(0, 64) : '';
    if (response.ok && code === 'OK' && answer) return answer;
    throw new BindError(code || `status ${response.status}`);
  }
}

/**
 * A number as PNS takes it: digits only, a Chinese one in its national form (a mobile's 11 digits,
 * a fixed line with its 0-led area code); any other, the digits of its E.164.
 */
export function pnsNumber(e164: string): string {
  const parsed = parsePhoneNumberFromString(e164);
  if (parsed?.country === 'CN') return parsed.formatNational().replace(/\D/g, '');
  return e164.replace(/\D/g, '');
}

/** PNS's Expiration: `yyyy-MM-dd HH:mm:ss` in China Standard Time (UTC+8, no daylight saving). */
export function pnsTime(ms: number): string {
  return new Date(ms + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
}
