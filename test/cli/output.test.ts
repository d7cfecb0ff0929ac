import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeDecision } from '../../src/cli/commands/simulate.ts';
import { table } from '../../src/cli/output.ts';

describe('CLI output', () => {
  it('says a routing decision in plain words, masking the number reached', () => {
    const sessionId = 'ses_01a2094c40470000d176ad5e4ec2';
    assert.equal(
      describeDecision({
        action: 'connect',
        to: '+14155550102',
        callerId: '+14155550151',
        sessionId,
        record: false,
        maxCallSeconds: null,
      }),
      `connect → +1415*****02 showing +14155550151 (session ${sessionId})`,
    );
    assert.equal(
      describeDecision({
        action: 'forward',
        to: '+14155550101',
        from: '+14155550150',
        body: 'hi',
        sessionId,
      }),
      `forward → +1415*****01 from +14155550150: "hi" (session ${sessionId})`,
    );
    assert.equal(
      describeDecision({ action: 'reject', reason: 'no_session', sessionId: null }),
      'reject (no_session)',
    );
    assert.equal(
      describeDecision({ action: 'reject', reason: 'channel_not_allowed', sessionId }),
      `reject (channel_not_allowed, session ${sessionId})`,
    );
    assert.equal(
      describeDecision({
        action: 'connect',
        to: '+18005550100',
        callerId: '+14155550150',
        sessionId: null,
        record: false,
        maxCallSeconds: null,
      }),
      'connect → +1800*****00 showing +14155550150 (out of session)',
    );
  });

  it('lines up columns, leaving the last one unpadded', () => {
    assert.deepEqual(
      table([
        ['ID', 'NUMBER', 'TAGS'],
        ['num_1', '+14155550150', 'city=sf'],
      ]),
      ['ID     NUMBER        TAGS', 'num_1  +14155550150  city=sf'],
    );
  });
});
