import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { orderSession, readOrderEvent } from '../../src/domain/order-events.ts';

const CUSTOMER = '+14155550101';
const COURIER = '+14155550102';

describe('readOrderEvent', () => {
  it('reads the four events of DESIGN §6, numbers in E.164, fields it does not know ignored', () => {
    const assigned = {
      type: 'order.assigned',
      orderId: 'o-1',
      customer: { number: CUSTOMER },
      courier: { number: COURIER },
      shop: 7,
    };
    assert.deepEqual(readOrderEvent(JSON.stringify(assigned)), {
      ok: true,
      event: { type: 'order.assigned', orderId: 'o-1', customer: CUSTOMER, courier: COURIER },
    });
    assert.deepEqual(
      readOrderEvent(
        new TextEncoder().encode(
          '{"type":"order.reassigned","orderId":"o-1","courier":{"number":"+14155550103"}}',
        ),
      ),
      { ok: true, event: { type: 'order.reassigned', orderId: 'o-1', courier: '+14155550103' } },
    );
    for (const type of ['order.delivered', 'order.cancelled']) {
      assert.deepEqual(readOrderEvent(JSON.stringify({ type, orderId: 'o-1' })), {
        ok: true,
        event: { type, orderId: 'o-1' },
      });
    }
  });

  it('reads national numbers with a default country, else refuses them', () => {
    const event = JSON.stringify({
      type: 'order.reassigned',
      orderId: 'o-1',
      courier: { number: '(415) 555-0103' },
    });
    assert.deepEqual(readOrderEvent(event, 'US'), {
      ok: true,
      event: { type: 'order.reassigned', orderId: 'o-1', courier: '+14155550103' },
    });
    assert.equal(readOrderEvent(event).ok, false);
  });

  it('says why a message is not an event, never quoting a number from it', () => {
    const cases: [string, RegExp][] = [
      [`{"orderId":"o-1","customer":{"number":"${CUSTOMER}"`, /^the message is not JSON$/],
      [`["${CUSTOMER}"]`, /not a JSON object/],
      [JSON.stringify({ type: 'order.assigned', customer: { number: CUSTOMER } }), /orderId is missing/],
      [JSON.stringify({ type: 'order.delivered', orderId: '' }), /orderId is missing/],
      [JSON.stringify({ type: 'order.delivered', orderId: 'x'.repeat(129) }), /orderId is longer than 128/],
      [JSON.stringify({ type: 'order.shipped', orderId: 'o-1' }), /type must be one of order.assigned/],
      [JSON.stringify({ orderId: 'o-1' }), /type must be one of/],
      [
        JSON.stringify({ type: 'order.assigned', orderId: 'o-1', customer: { number: CUSTOMER } }),
        /courier\.number is missing/,
      ],
      [
        JSON.stringify({
          type: 'order.assigned',
          orderId: 'o-1',
          customer: CUSTOMER,
          courier: { number: COURIER },
        }),
        /customer\.number is missing/,
      ],
      [
        JSON.stringify({
          type: 'order.assigned',
          orderId: 'o-1',
          customer: { number: '+1415555' },
          courier: { number: COURIER },
        }),
        /customer\.number is not a valid phone number/,
      ],
      [
        JSON.stringify({
          type: 'order.assigned',
          orderId: 'o-1',
          customer: { number: CUSTOMER },
          courier: { number: CUSTOMER },
        }),
        /the same number/,
      ],
      [
        JSON.stringify({ type: 'order.reassigned', orderId: 'o-1', courier: { number: 4155550103 } }),
        /courier\.number is missing/,
      ],
    ];
    for (const [body, reason] of cases) {
      const read = readOrderEvent(body);
      assert.equal(read.ok, false, body);
      if (read.ok) continue;
      assert.match(read.reason, reason, body);
      assert.doesNotMatch(read.reason, /555/, 'a number is quoted');
    }
  });
});

describe('orderSession', () => {
  it('names the session by the orderId and labels customer and courier', () => {
    assert.deepEqual(
      orderSession({ type: 'order.assigned', orderId: 'o-1', customer: CUSTOMER, courier: COURIER }),
      {
        externalId: 'o-1',
        participants: [
          { number: CUSTOMER, label: 'customer' },
          { number: COURIER, label: 'courier' },
        ],
      },
    );
  });
});
