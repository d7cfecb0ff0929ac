import { InvalidRequestError } from './errors.ts';
import { parsePhone } from './phone.ts';
import type { SessionInput } from './session.ts';

/** The order events a broker brings in (DESIGN §6); each names its order by `orderId`. */
export const ORDER_EVENT_TYPES = [
  'order.assigned',
  'order.reassigned',
  'order.delivered',
  'order.cancelled',
] as const;
export type OrderEventType = (typeof ORDER_EVENT_TYPES)[number];

/** As long as an externalId may be (the API's limit): the order's session is named by it. */
export const MAX_ORDER_ID_LENGTH = 128;

/** The labels an order's session gives its two participants, so that a reassignment finds the courier. */
export const CUSTOMER_LABEL = 'customer';
export const COURIER_LABEL = 'courier';

/** An order event, checked: its numbers in E.164. */
export type OrderEvent =
  | { type: 'order.assigned'; orderId: string; customer: string; courier: string }
  | { type: 'order.reassigned'; orderId: string; courier: string }
  | { type: 'order.delivered' | 'order.cancelled'; orderId: string };

/**
 * An event read from a broker's message: the event, or why it can never be carried out (with its
 * orderId when it had a readable one). The reason never contains a number from the message.
 */
export type ReadOrderEvent =
  | { ok: true; event: OrderEvent }
  | { ok: false; reason: string; orderId?: string };

/**
 * Reads a message's body as an order event: JSON `{"type","orderId",...}` with `customer.number`
 * and `courier.number` on `order.assigned` and the new `courier.number` on `order.reassigned`.
 * Fields it does not know are ignored, so that producers may add their own.
 */
export function readOrderEvent(body: Uint8Array | string, defaultCountry?: string): ReadOrderEvent {
  let json: unknown;
  try {
    json = JSON.parse(typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  } catch {
    // Not JSON.parse's message: it quotes the text, which may hold a number.
    return { ok: false, reason: 'the message is not JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, reason: 'the message is not a JSON object' };
  }
  const fields = json as Record<string, unknown>;
  const { type, orderId } = fields;
  if (typeof orderId !== 'string' || orderId.trim() === '') {
    return { ok: false, reason: 'orderId is missing or not a string' };
  }
  if (orderId.length > MAX_ORDER_ID_LENGTH) {
    return { ok: false, reason: `orderId is longer than ${MAX_ORDER_ID_LENGTH} characters` };
  }
  if (typeof type !== 'string' || !(ORDER_EVENT_TYPES as readonly string[]).includes(type)) {
    return { ok: false, orderId, reason: `type must be one of ${ORDER_EVENT_TYPES.join(', ')}` };
  }
  try {
    switch (type as OrderEventType) {
      case 'order.assigned': {
        const customer = numberOf(fields, 'customer', defaultCountry);
        const courier = numberOf(fields, 'courier', defaultCountry);
        if (customer === courier) {
          return { ok: false, orderId, reason: 'customer.number and courier.number are the same number' };
        }
        return { ok: true, event: { type: 'order.assigned', orderId, customer, courier } };
      }
      case 'order.reassigned':
        return {
          ok: true,
          event: { type: 'order.reassigned', orderId, courier: numberOf(fields, 'courier', defaultCountry) },
        };
      default:
        return { ok: true, event: { type: type as 'order.delivered' | 'order.cancelled', orderId } };
    }
  } catch (error) {
    // parsePhone's messages name the field, never the number.
    if (error instanceof InvalidRequestError) return { ok: false, orderId, reason: error.message };
    throw error;
  }
}

/** `fields[who].number` in E.164; throws InvalidRequestError naming the field. */
function numberOf(fields: Record<string, unknown>, who: string, defaultCountry: string | undefined): string {
  const person = fields[who];
  const number =
    typeof person === 'object' && person !== null ? (person as { number?: unknown }).number : undefined;
  if (typeof number !== 'string')
    throw new InvalidRequestError(`${who}.number is missing or not a string`, `${who}.number`);
  return parsePhone(number, `${who}.number`, defaultCountry).e164;
}

/** The session an `order.assigned` opens: customer and courier, labelled, named by the orderId. */
export function orderSession(event: Extract<OrderEvent, { type: 'order.assigned' }>): SessionInput {
  return {
    externalId: event.orderId,
    participants: [
      { number: event.customer, label: CUSTOMER_LABEL },
      { number: event.courier, label: COURIER_LABEL },
    ],
  };
}
