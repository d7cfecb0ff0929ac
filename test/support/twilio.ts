import type { LightMyRequestResponse } from 'fastify';
import twilio from 'twilio';
import { PUBLIC_URL, type TestApp, TWILIO_TOKEN } from './app.ts';

export type TwilioParams = Record<string, string>;

export interface TwilioSigning {
  /** The auth token to sign with (default: the configured one). */
  token?: string;
  /** The URL to sign (default: VEIL_PUBLIC_URL + the path requested). */
  signedUrl?: string;
  /** The params to sign (default: those sent). */
  signedParams?: TwilioParams;
}

/**
 * A webhook as Twilio sends it: form-encoded and signed with the real `twilio` package over
 * VEIL_PUBLIC_URL + path and the params, unless 'unsigned'.
 */
export function postTwilio(
  t: TestApp,
  path: string,
  params: TwilioParams,
  signing: TwilioSigning | 'unsigned' = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (signing !== 'unsigned') {
    headers['x-twilio-signature'] = twilio.getExpectedTwilioSignature(
      signing.token ?? TWILIO_TOKEN,
      signing.signedUrl ?? PUBLIC_URL + path,
      signing.signedParams ?? params,
    );
  }
  return t.app.inject({
    method: 'POST',
    url: path,
    headers,
    payload: new URLSearchParams(params).toString(),
  });
}

/** A session of `numbers` on the test app, and each number's proxy in it. */
export async function openSession(
  t: TestApp,
  numbers: string[],
  options: Record<string, unknown> = {},
): Promise<{ id: string; proxyOf: Map<string, string> }> {
  const r = await t.api('POST', '/v1/sessions', {
    ...options,
    participants: numbers.map((number) => ({ number })),
  });
  if (r.statusCode !== 201) throw new Error(`session not opened: ${r.body}`);
  const session = r.json();
  return {
    id: session.id,
    proxyOf: new Map(
      session.participants.map((p: { number: string; proxyNumber: string }) => [p.number, p.proxyNumber]),
    ),
  };
}

/** The interactions of a session as GET /v1/sessions/:id/interactions shows them. */
export async function sessionInteractions(t: TestApp, sessionId: string): Promise<InteractionView[]> {
  const r = await t.api('GET', `/v1/sessions/${sessionId}/interactions?limit=200`);
  if (r.statusCode !== 200) throw new Error(`interactions not listed: ${r.body}`);
  return r.json().data;
}

export interface InteractionView {
  id: string;
  channel: string;
  action: string;
  providerCallId: string | null;
  status: string;
  durationSeconds: number | null;
  media: string[];
  recording: { url: string | null; durationSeconds: number | null; status: string } | null;
}
