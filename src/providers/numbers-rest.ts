import { maskNumbersInText } from '../domain/phone.ts';
import { ProcurementError } from './procurement.ts';

/** How long one request to a carrier's numbers API may take, its answer's body included. */
export const NUMBERS_REQUEST_TIMEOUT_MS = 15_000;

/**
 * A numbers API call that failed: `status` is the carrier's HTTP answer, absent when none came (a
 * timeout, a reset). A 4xx is the carrier's answer that it did nothing; a 5xx or no answer leaves
 * it unknown.
 */
export class NumbersApiError extends ProcurementError {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message, status !== undefined && status >= 400 && status < 500);
  }
}

/** A carrier's answer: its status and its body, parsed as JSON when it is (else the text, or undefined). */
export interface NumbersAnswer {
  status: number;
  body: unknown;
}

/**
 * Sends one request to a carrier's numbers API within `timeoutMs`, body read included. Every answer
 * is returned, whatever its status; no answer is a NumbersApiError without status. `label` names
 * the call in errors (`plivo purchase`).
 */
export async function numbersRequest(
  label: string,
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
  timeoutMs = NUMBERS_REQUEST_TIMEOUT_MS,
): Promise<NumbersAnswer> {
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      ...init,
      headers: { accept: 'application/json', ...init.headers },
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    const name = (error as { name?: string })?.name;
    throw new NumbersApiError(`${label} failed: ${name === 'TimeoutError' ? 'timeout' : 'no answer'}`);
  }
  let body: unknown = text || undefined;
  try {
    if (text) body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's error page): kept as text for the error's detail.
  }
  return { status: response.status, body };
}

/**
 * The error for an answer that is not the one hoped for: `HTTP <status>` and the carrier's own
 * words (`detail`), masked, since carriers quote the number they were asked about.
 */
export function numbersFailure(label: string, status: number | undefined, detail?: unknown): NumbersApiError {
  const words = typeof detail === 'string' && detail ? maskNumbersInText(detail).slice(0, 200) : undefined;
  const what = [status === undefined ? undefined : `HTTP ${status}`, words].filter(Boolean).join(', ');
  return new NumbersApiError(`${label} failed: ${what || 'unexpected answer'}`, status);
}

/** `Basic` credentials, as Plivo and Vonage's Numbers API take their account's id and secret. */
export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** A JSON object's field, or undefined when the body is no object. */
export function fieldOf(body: unknown, name: string): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[name] : undefined;
}
