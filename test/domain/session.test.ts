import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidRequestError } from '../../src/domain/errors.ts';
import { canonicalJson, effectiveStatus, normalizeSession } from '../../src/domain/session.ts';

const NOW = Date.parse('2026-01-01T00:00:00Z');
const defaults = { ttlSeconds: 3600 };
const participants = [{ number: '+14155550123' }, { number: '+14155550187', label: 'courier' }];

describe('normalizeSession', () => {
  it('applies the defaults', () => {
    const s = normalizeSession({ participants }, defaults, NOW);
    assert.equal(s.expiresAt, NOW + 3_600_000);
    assert.deepEqual(s.policy, {
      mode: 'per-participant',
      ttlMode: 'fixed',
      ttlSeconds: 3600,
      record: false,
      channels: ['voice', 'sms'],
      maxCallSeconds: null,
      geoMatch: 'region',
      sticky: 'none',
      extensionFallback: false,
    });
    assert.equal(s.participants[1]?.label, 'courier');
    assert.equal(s.participants[0]?.phone.region, '415');
  });

  it('gives the same fingerprint to the same request sent again later or with keys reordered', () => {
    const a = normalizeSession({ externalId: 'o', ttlSeconds: 60, participants }, defaults, NOW);
    const b = normalizeSession({ participants, ttlSeconds: 60, externalId: 'o' }, defaults, NOW + 5000);
    const c = normalizeSession({ externalId: 'o', ttlSeconds: 61, participants }, defaults, NOW);
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.fingerprint, c.fingerprint);
  });

  it('names the field at fault', () => {
    const field = (input: Parameters<typeof normalizeSession>[0]) => {
      try {
        normalizeSession(input, defaults, NOW);
      } catch (e) {
        assert.ok(e instanceof InvalidRequestError);
        return e.field;
      }
      assert.fail('expected an error');
    };
    assert.equal(field({ mode: 'x', participants }), 'mode');
    // A dedicated session has its owner alone.
    assert.equal(field({ mode: 'dedicated', participants }), 'participants');
    assert.equal(
      field({ mode: 'dedicated', extensionFallback: true, participants: participants.slice(0, 1) }),
      'extensionFallback',
    );
    assert.equal(
      field({ participants: [{ number: '+1' }, { number: '+14155550187' }] }),
      'participants/0/number',
    );
    assert.equal(field({ participants: [participants[0] as { number: string }] }), 'participants');
    assert.equal(
      field({ ttlMode: 'sliding', expiresAt: '2026-02-01T00:00:00Z', participants }),
      'ttlSeconds',
    );
    assert.equal(field({ channels: [], participants }), 'channels');
  });
});

describe('effectiveStatus', () => {
  it('is expired for an open session past its expiry', () => {
    assert.equal(effectiveStatus({ status: 'open', expiresAt: NOW }, NOW), 'expired');
    assert.equal(effectiveStatus({ status: 'open', expiresAt: NOW + 1 }, NOW), 'open');
    assert.equal(effectiveStatus({ status: 'closed', expiresAt: NOW - 1 }, NOW), 'closed');
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined', () => {
    assert.equal(
      canonicalJson({ b: [{ d: 1, c: 2 }], a: undefined, e: null }),
      '{"b":[{"c":2,"d":1}],"e":null}',
    );
  });
});
