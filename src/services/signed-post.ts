import type { Webhook } from 'standardwebhooks';

/** The most of an answer's body read; a longer one is left unread. */
export const MAX_ANSWER_BYTES = 4096;

/** A message to POST: its `webhook-id`, the time it is signed at and its JSON body. */
export interface SignedMessage {
  id: string;
  at: Date;
  body: string;
}

/**
 * What came back: the status, with the body of a 2xx answer when it was asked for (undefined when
 * over MAX_ANSWER_BYTES); or why nothing came (`timeout: no answer in time`, `unreachable: CODE`).
 */
export type SignedReply = { ok: true; status: number; text?: string } | { ok: false; reason: string };

/**
 * POSTs a JSON message to the app, signed with Standard Webhooks headers (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature`), within `signal`. A redirect is not followed (it could
 * carry real numbers elsewhere): it is its 3xx status. Only a 2xx answer's body is read, and only
 * when `read`; any other is dropped unread.
 */
export async function postSigned(
  webhook: Webhook,
  url: string,
  message: SignedMessage,
  signal: AbortSignal,
  read: boolean,
): Promise<SignedReply> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': message.id,
        'webhook-timestamp': String(Math.floor(message.at.getTime() / 1000)),
        'webhook-signature': webhook.sign(message.id, message.at, message.body),
      },
      body: message.body,
      redirect: 'manual',
      signal,
    });
  } catch (error) {
    return { ok: false, reason: failure(error, signal) };
  }
  try {
    const { status } = response;
    if (!read || status < 200 || status > 299) return { ok: true, status };
    return { ok: true, status, text: await cappedText(response) };
  } catch (error) {
    return { ok: false, reason: failure(error, signal) };
  } finally {
    // An answer not read to its end would hold its connection.
    if (response.body && !response.bodyUsed) response.body.cancel().catch(() => {});
  }
}

/** The body as text, or undefined when it is longer than MAX_ANSWER_BYTES (then left unread). */
async function cappedText(response: Response): Promise<string | undefined> {
  if (Number(response.headers.get('content-length')) > MAX_ANSWER_BYTES) return undefined;
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Why a request failed, in words for the log: the timeout, or the system's code (ECONNREFUSED). */
function failure(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) return 'timeout: no answer in time';
  const e = error as { message?: string; cause?: { code?: string; message?: string } };
  return `unreachable: ${e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(error)}`;
}
