import { randomBytes } from 'node:crypto';
import { personNumber } from './numbering.ts';
import { randomIndex, seededRandom } from './random.ts';

/**
 * Couriers who take many orders: a courier is drawn as ⌊r²·COURIERS⌋, so the busiest holds about
 * 1/√COURIERS of all sessions (2%, i.e. ~1,100 of 50,000 — still under the pool of 2,000).
 */
const COURIERS = 2_000;
/** Customers are nearly always new people. */
const CUSTOMERS = 10_000_000;
const FIRST_CUSTOMER = COURIERS;

/**
 * Bodies of POST /v1/sessions as a delivery platform sends them: an order id as externalId and two
 * participants, a courier (some of whom hold many sessions at once) and a customer.
 */
export function sessionBodies(seed: number): () => string {
  const random = seededRandom(seed);
  const run = randomBytes(4).toString('hex'); // order ids unique across runs on one database
  let order = 0;
  return () => {
    const courier = Math.floor(random() ** 2 * COURIERS);
    const customer = FIRST_CUSTOMER + randomIndex(random, CUSTOMERS);
    return JSON.stringify({
      externalId: `order-${run}-${order++}`,
      participants: [
        { number: personNumber(courier), label: 'courier' },
        { number: personNumber(customer), label: 'customer' },
      ],
    });
  };
}
