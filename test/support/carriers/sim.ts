import type { LightMyRequestResponse } from 'fastify';
import { signSimRequest } from '../../../src/providers/sim/sim-adapter.ts';
import { SIM_SECRET, type TestApp } from '../app.ts';
import type { CarrierHarness, Forgery, Outcome } from '../carriers.ts';

type Body = Record<string, unknown>;

function post(
  t: TestApp,
  path: string,
  body: Body,
  sign: { secret?: string; at?: number; signedBody?: string } | 'unsigned' = {},
): Promise<LightMyRequestResponse> {
  const raw = JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (sign !== 'unsigned')
    Object.assign(headers, signSimRequest(sign.secret ?? SIM_SECRET, sign.signedBody ?? raw, sign.at));
  return t.app.inject({ method: 'POST', url: path, headers, payload: raw });
}

/** The simulator answers with the neutral decision itself. */
function outcome(r: LightMyRequestResponse): Outcome {
  if (r.statusCode !== 200) return { status: r.statusCode, action: 'reject' };
  const d = r.json();
  if (d.action === 'connect') return { status: 200, action: 'connect', to: d.to, callerId: d.callerId };
  if (d.action === 'forward') return { status: 200, action: 'forward', to: d.to, from: d.from, body: d.body };
  return { status: 200, action: 'reject' };
}

export const simHarness: CarrierHarness = {
  name: 'sim',
  env: () => ({}),
  call: async (t, c) =>
    outcome(await post(t, '/webhooks/sim/voice', { from: c.from, to: c.to, callId: c.id })),
  text: async (t, c) =>
    outcome(await post(t, '/webhooks/sim/sms', { from: c.from, to: c.to, body: c.body, callId: c.id })),
  status: (t, c) =>
    post(t, '/webhooks/sim/status', {
      callId: c.id,
      status: 'completed',
      durationSeconds: c.durationSeconds,
    }),
  forgeries(c): Forgery[] {
    const body = { from: c.from, to: c.to, callId: c.id };
    const path = '/webhooks/sim/voice';
    return [
      { name: 'unsigned', send: (t) => post(t, path, body, 'unsigned') },
      { name: 'signed with another secret', send: (t) => post(t, path, body, { secret: 'not-the-secret' }) },
      {
        name: 'a changed body',
        send: (t) => post(t, path, body, { signedBody: JSON.stringify({ ...body, from: c.to }) }),
      },
      { name: 'signed an hour ago', send: (t) => post(t, path, body, { at: Date.now() - 3_600_000 }) },
      { name: 'signed an hour ahead', send: (t) => post(t, path, body, { at: Date.now() + 3_600_000 }) },
      {
        name: 'a bad signature header',
        send: (t) =>
          t.app.inject({
            method: 'POST',
            url: path,
            headers: {
              'content-type': 'application/json',
              'x-sim-timestamp': String(Math.floor(Date.now() / 1000)),
              'x-sim-signature': '0'.repeat(64),
            },
            payload: JSON.stringify(body),
          }),
      },
    ];
  },
};
