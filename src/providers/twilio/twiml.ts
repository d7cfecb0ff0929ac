/**
 * TwiML is written with the shared XML helpers (../xml.ts): the same bytes as the `twilio`
 * package's builders (test/providers/twiml.test.ts holds the package as the oracle).
 */
export { element, response, text } from '../xml.ts';
