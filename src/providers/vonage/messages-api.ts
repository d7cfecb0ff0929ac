import { RelayError } from '../carrier.ts';

/** How long a text's relay may take: Vonage waits a few seconds for the webhook's answer in all. */
export const SEND_TIMEOUT_MS = 3000;

/** A text to send through the Messages API; numbers as Vonage writes them, digits without `+`. */
export interface OutboundText {
  to: string;
  from: string;
  text: string;
}

/**
 * The one request Veil makes of Vonage's Messages API: send an SMS (`POST {apiUrl}/v1/messages`,
 * answered 202 `{"message_uuid"}`), authenticated with the account's API key and secret (Basic),
 * which the Messages API accepts for sending. Plain fetch: the SDK would add a stack of packages
 * for this single request, and its base URL and timeout are all Veil needs to set.
 */
export class MessagesApi {
  private readonly endpoint: string;
  private readonly authorization: string;

  constructor(
    apiUrl: string,
    apiKey: string,
    apiSecret: string,
    private readonly timeoutMs = SEND_TIMEOUT_MS,
  ) {
    this.endpoint = `${apiUrl}/v1/messages`;
    this.authorization = `Basic ${Buffer.from(`${apiKey}:${apiSecret}`).toString('base64')}`;
  }

  /** Sends the text; its message_uuid, or a RelayError. */
  async send(text: OutboundText): Promise<string> {
    let response: Response;
    let answer: string;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: {
          authorization: this.authorization,
          'content-type': 'application/json',
          accept: 'application/json',
        },
        body: JSON.stringify({
          message_type: 'text',
          channel: 'sms',
          to: text.to,
          from: text.from,
          text: text.text,
        }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      // Read within the same time bound: a body that never ends is a timeout too.
      answer = await response.text();
    } catch (error) {
      const name = (error as { name?: string })?.name;
      throw new RelayError(name === 'TimeoutError' ? 'timeout' : 'unreachable');
    }
    // The status alone: an error's detail may repeat the numbers it was sent.
    if (!response.ok) throw new RelayError(`status ${response.status}`);
    try {
      const uuid = (JSON.parse(answer) as { message_uuid?: unknown }).message_uuid;
      return typeof uuid === 'string' ? uuid : '';
    } catch {
      // Accepted all the same: the status says the message was taken.
      return '';
    }
  }
}
