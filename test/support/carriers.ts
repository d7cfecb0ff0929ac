import type { LightMyRequestResponse } from 'fastify';
import type { TestApp } from './app.ts';

/**
 * What a carrier was told to do with a call or a text, read back from its own language (TwiML,
 * NCCO, Plivo XML, TeXML, a send through its API): put through to `to` showing `callerId`, or not.
 */
export type Outcome =
  | { status: number; action: 'connect'; to: string; callerId: string }
  | { status: number; action: 'forward'; to: string; from: string; body: string }
  | { status: number; action: 'reject' };

export interface Call {
  from: string;
  to: string;
  /** The carrier's id of the call or message (each harness writes it its own way). */
  id: string;
}

/** A webhook sent the wrong way: it must be answered 403 and route and write nothing. */
export interface Forgery {
  name: string;
  send(t: TestApp): Promise<LightMyRequestResponse>;
}

/**
 * One carrier as the contract suite (test/providers/contract.test.ts) drives it: webhooks sent as
 * the carrier sends them, signed with its own package where one signs, answers read back. Numbers
 * are given and returned in E.164; the harness writes them as its carrier does (digits without `+`).
 */
export interface CarrierHarness {
  /** The provider's name, as on POST /v1/numbers and in /webhooks/<name>/. */
  readonly name: string;
  /** The environment that enables the carrier in testApp: its credentials and its fake API's URL. */
  env(): Record<string, string>;
  /** Starts what the carrier's REST calls reach (a local fake of its API), when it has one. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /** A call delivered to Veil as the carrier delivers it, and what the carrier was answered. */
  call(t: TestApp, call: Call): Promise<Outcome>;
  /** A text delivered as the carrier delivers it, and what became of it (relayed or not). */
  text(t: TestApp, text: Call & { body: string }): Promise<Outcome>;
  /** The carrier's report that a call ended (`completed`, after `durationSeconds`). */
  status(t: TestApp, report: Call & { durationSeconds: number }): Promise<LightMyRequestResponse>;
  /**
   * Every forged variant of a voice webhook for `call`: no signature, a wrong one, another secret,
   * another URL, a changed body, an expired or replayed one where the carrier's scheme has a time.
   */
  forgeries(call: Call): Forgery[];
}
