import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, Environment, loadConfig } from '../src/config.ts';
import { DEFAULT_TTL_SECONDS } from '../src/domain/session.ts';
import { loadDataKeys, readKeyFile } from '../src/services/data-keys.ts';
import { TEST_KEY_ENV } from './support/stores.ts';

const PROJECT = resolve(fileURLToPath(import.meta.url), '../..');
const TWILIO_SID = `AC${'a1'.repeat(16)}`;

/** Asserts that `env` is refused with a ConfigError naming `key` (and not echoing `secret`). */
function assertRefused(env: Record<string, string>, key: string, secret?: string): void {
  assert.throws(
    () => loadConfig(env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `${JSON.stringify(env)}: not a ConfigError: ${error}`);
      assert.equal(error.key, key, `${JSON.stringify(env)} → ${error.message}`);
      assert.ok(error.message.includes(key), error.message);
      if (secret)
        assert.ok(!error.message.includes(secret), `the message echoes the secret: ${error.message}`);
      return true;
    },
  );
}

describe('loadConfig', () => {
  describe('defaults', () => {
    it('in development: localhost:3000, SQLite at ./data/veil.db, the demo pool', () => {
      const config = loadConfig({});
      assert.equal(config.production, false);
      assert.equal(config.port, 3000);
      assert.equal(config.host, '127.0.0.1');
      assert.deepEqual(config.store, { dialect: 'sqlite', file: resolve('./data/veil.db') });
      assert.equal(config.demoPool, true);
      assert.equal(config.publicUrl, 'http://127.0.0.1:3000');
      assert.equal(config.defaultTtlSeconds, DEFAULT_TTL_SECONDS);
      assert.equal(config.defaultTtlSeconds, 86_400);
      assert.equal(config.reuseCooldownSeconds, 3600);
      assert.deepEqual(config.outOfSession, { action: 'reject' });
      assert.equal(config.interceptUrl, undefined);
      assert.equal(config.logLevel, 'info');
      assert.equal(config.defaultCountry, undefined);
      assert.equal(config.twilio, undefined);
      assert.equal(config.apiKey, undefined);
      assert.equal(config.simWebhookSecret, undefined);
    });

    it('in production: all interfaces, no demo pool', () => {
      const config = loadConfig({ NODE_ENV: 'production', ...TEST_KEY_ENV });
      assert.equal(config.production, true);
      assert.equal(config.host, '0.0.0.0');
      assert.equal(config.demoPool, false);
      assert.equal(config.port, 3000);
      // 0.0.0.0 is where the server listens, not an address anyone can call.
      assert.equal(config.publicUrl, 'http://127.0.0.1:3000');
    });

    it('empty values count as unset', () => {
      const config = loadConfig({
        PORT: '',
        HOST: '',
        VEIL_DEMO_POOL: '',
        LOG_LEVEL: '',
        VEIL_PUBLIC_URL: '',
      });
      assert.equal(config.port, 3000);
      assert.equal(config.host, '127.0.0.1');
      assert.equal(config.demoPool, true);
      assert.equal(config.logLevel, 'info');
    });
  });

  describe('explicit values', () => {
    it('order events: off unless VEIL_NATS_URL or KAFKA_BROKERS; then DESIGN §6 defaults', () => {
      assert.deepEqual(loadConfig({}).orders, { nats: undefined, kafka: undefined });
      const config = loadConfig({
        VEIL_NATS_URL: 'nats://a:4222, nats://b:4222',
        KAFKA_BROKERS: 'k1:9092,k2:9092',
      });
      assert.deepEqual(config.orders, {
        nats: {
          servers: ['nats://a:4222', 'nats://b:4222'],
          subject: 'orders.>',
          deadSubject: 'veil.orders.dead',
          durable: 'veil-orders',
        },
        kafka: {
          brokers: ['k1:9092', 'k2:9092'],
          topic: 'orders',
          deadTopic: 'veil.orders.dead',
          groupId: 'veil-orders',
        },
      });
      const chosen = loadConfig({
        VEIL_NATS_URL: '127.0.0.1:4222',
        VEIL_NATS_SUBJECT: 'shop.*.order.>',
        VEIL_NATS_DEAD_SUBJECT: 'shop.veil.dead',
        VEIL_NATS_DURABLE: 'veil_eu-1',
        KAFKA_BROKERS: 'kafka:9092',
        VEIL_KAFKA_TOPIC: 'shop.orders',
        VEIL_KAFKA_DEAD_TOPIC: 'shop.orders.dead',
        VEIL_KAFKA_GROUP: 'veil-eu',
      }).orders;
      assert.deepEqual(chosen.nats, {
        servers: ['127.0.0.1:4222'],
        subject: 'shop.*.order.>',
        deadSubject: 'shop.veil.dead',
        durable: 'veil_eu-1',
      });
      assert.deepEqual(chosen.kafka, {
        brokers: ['kafka:9092'],
        topic: 'shop.orders',
        deadTopic: 'shop.orders.dead',
        groupId: 'veil-eu',
      });
    });

    it('takes PORT, HOST, VEIL_DEMO_POOL, LOG_LEVEL and the rest', () => {
      const config = loadConfig({
        NODE_ENV: 'production',
        ...TEST_KEY_ENV,
        PORT: '8080',
        HOST: '10.0.0.5',
        VEIL_DEMO_POOL: 'true',
        LOG_LEVEL: 'warn',
        VEIL_DEFAULT_COUNTRY: 'GB',
        VEIL_DEFAULT_TTL_SECONDS: '600',
        VEIL_REUSE_COOLDOWN_SECONDS: '0',
        VEIL_OUT_OF_SESSION: 'forward:+14155550100',
        VEIL_API_KEY: 'an-api-key-of-24-chars!!',
        TWILIO_ACCOUNT_SID: TWILIO_SID,
        TWILIO_AUTH_TOKEN: 'token',
        SIM_WEBHOOK_SECRET: 'sim-secret',
      });
      assert.equal(config.port, 8080);
      assert.equal(config.host, '10.0.0.5');
      assert.equal(config.publicUrl, 'http://10.0.0.5:8080');
      assert.equal(config.demoPool, true);
      assert.equal(config.logLevel, 'warn');
      assert.equal(config.defaultCountry, 'GB');
      assert.equal(config.defaultTtlSeconds, 600);
      assert.equal(config.reuseCooldownSeconds, 0);
      assert.deepEqual(config.outOfSession, { action: 'forward', to: '+14155550100' });
      assert.equal(config.apiKey, 'an-api-key-of-24-chars!!');
      assert.deepEqual(config.twilio, {
        accountSid: TWILIO_SID,
        authToken: 'token',
        apiUrl: 'https://api.twilio.com',
      });
      assert.equal(config.simWebhookSecret, 'sim-secret');
      assert.equal(loadConfig({ VEIL_DEMO_POOL: '0' }).demoPool, false);
      assert.equal(loadConfig({ VEIL_DEMO_POOL: 'false' }).demoPool, false);
    });

    it('VEIL_OUT_OF_SESSION=ask:URL and VEIL_INTERCEPT_URL: https always, http in development only', () => {
      const ask = 'https://app.example.com/veil/ask?token=t';
      const intercept = 'https://app.example.com/veil/intercept';
      const production = loadConfig({
        NODE_ENV: 'production',
        ...TEST_KEY_ENV,
        VEIL_OUT_OF_SESSION: `ask:${ask}`,
        VEIL_INTERCEPT_URL: intercept,
      });
      assert.deepEqual(production.outOfSession, { action: 'ask', url: ask });
      assert.equal(production.interceptUrl, intercept);
      const development = loadConfig({
        VEIL_OUT_OF_SESSION: 'ask:http://127.0.0.1:8080/ask',
        VEIL_INTERCEPT_URL: 'http://localhost:8080/intercept',
      });
      assert.deepEqual(development.outOfSession, { action: 'ask', url: 'http://127.0.0.1:8080/ask' });
      assert.equal(development.interceptUrl, 'http://localhost:8080/intercept');
      assert.equal(loadConfig({ VEIL_INTERCEPT_URL: '' }).interceptUrl, undefined);
    });

    it('what callers hear: the reject message and gather prompt, in a language and voice, or recorded', () => {
      const plain = loadConfig({});
      assert.deepEqual(plain.rejectMessage, { text: 'The number you have dialled is not available.' });
      assert.deepEqual(plain.gather, { text: 'Please enter the extension you were given.' });
      const spoken = loadConfig({
        VEIL_REJECT_MESSAGE: 'Nobody here.',
        VEIL_REJECT_AUDIO_URL: 'https://cdn.example/closed.mp3',
        VEIL_GATHER_PROMPT: 'Your code?',
        VEIL_VOICE_LANGUAGE: 'en-GB',
        VEIL_VOICE: 'Polly.Amy',
      });
      assert.deepEqual(spoken.rejectMessage, {
        text: 'Nobody here.',
        language: 'en-GB',
        voice: 'Polly.Amy',
        audioUrl: 'https://cdn.example/closed.mp3',
      });
      assert.deepEqual(spoken.gather, { text: 'Your code?', language: 'en-GB', voice: 'Polly.Amy' });
    });

    it('VEIL_CARRIER_WEIGHTS: a rule for everyone, then rules for an area code or a country', () => {
      assert.equal(loadConfig({}).carrierWeights, undefined);
      assert.deepEqual(
        loadConfig({ VEIL_CARRIER_WEIGHTS: ' twilio=9, telnyx=1 ; 415:telnyx=1;GB:vonage=1' }).carrierWeights,
        {
          default: { twilio: 9, telnyx: 1 },
          scoped: { '415': { telnyx: 1 }, GB: { vonage: 1 } },
        },
      );
    });

    it('VEIL_REPLENISH: low-water marks per country or area code, each buying through a carrier or only alerting', () => {
      assert.deepEqual(loadConfig({}).replenish, { rules: [], batch: 5, budget: 20, intervalMs: 60_000 });
      assert.deepEqual(
        loadConfig({
          VEIL_REPLENISH: ' US/415=10@twilio, GB=5 ,',
          VEIL_REPLENISH_BATCH: '3',
          VEIL_REPLENISH_BUDGET: '0',
          VEIL_REPLENISH_INTERVAL_SECONDS: '5',
        }).replenish,
        {
          rules: [
            { country: 'US', region: '415', minFree: 10, provider: 'twilio' },
            { country: 'GB', minFree: 5 },
          ],
          batch: 3,
          budget: 0,
          intervalMs: 5000,
        },
      );
      assert.throws(
        () =>
          loadConfig({
            NODE_ENV: 'production',
            ...TEST_KEY_ENV,
            VEIL_API_KEY: 'k'.repeat(32),
            VEIL_REPLENISH: 'US=1@sim',
          }),
        /VEIL_REPLENISH.*simulator/,
      );
    });

    it('VEIL_PUBLIC_URL wins over HOST:PORT, without its trailing slash', () => {
      const env = { HOST: '10.0.0.5', PORT: '8080' };
      assert.equal(
        loadConfig({ ...env, VEIL_PUBLIC_URL: 'https://veil.example.com/' }).publicUrl,
        'https://veil.example.com',
      );
      assert.equal(
        loadConfig({ ...env, VEIL_PUBLIC_URL: 'https://example.com/veil' }).publicUrl,
        'https://example.com/veil',
      );
    });

    it('the public URL made from HOST:PORT is always a URL, IPv6 too', () => {
      for (const host of ['localhost', '10.0.0.5', '::', '::1']) {
        const { publicUrl } = loadConfig({ HOST: host, PORT: '4000' });
        assert.doesNotThrow(() => new URL(publicUrl), `HOST=${host} gives ${publicUrl}`);
        assert.equal(new URL(publicUrl).port, '4000', publicUrl);
      }
    });
  });

  describe('DATABASE_URL', () => {
    it('postgres:// and postgresql:// select PostgreSQL', () => {
      for (const url of ['postgres://veil:pw@db:5432/veil', 'postgresql://veil@db/veil?sslmode=require']) {
        assert.deepEqual(loadConfig({ DATABASE_URL: url }).store, { dialect: 'postgres', url });
      }
    });

    it('sqlite:path, sqlite:///absolute, a bare path and sqlite::memory: select SQLite', () => {
      const cases: [string, string][] = [
        ['sqlite:./var/veil.db', resolve('./var/veil.db')],
        ['sqlite:var/veil.db', resolve('var/veil.db')],
        ['sqlite:///tmp/veil.db', '/tmp/veil.db'],
        ['./veil.db', resolve('./veil.db')],
        ['/var/lib/veil/veil.db', '/var/lib/veil/veil.db'],
        ['sqlite::memory:', ':memory:'],
      ];
      for (const [url, file] of cases) {
        assert.deepEqual(loadConfig({ DATABASE_URL: url }).store, { dialect: 'sqlite', file }, url);
      }
    });

    it('refuses other schemes and an empty sqlite: path, naming DATABASE_URL', () => {
      for (const url of ['mysql://x', 'mysql://veil@db/veil', 'mongodb://db', 'sqlite:', 'postgres://[bad']) {
        assertRefused({ DATABASE_URL: url }, 'DATABASE_URL');
      }
    });

    it('does not echo the database password', () => {
      assertRefused({ DATABASE_URL: 'mysql://veil:s3cret-pw@db/veil' }, 'DATABASE_URL', 's3cret-pw');
      assertRefused({ DATABASE_URL: 'postgres://veil:s3cret-pw@[bad' }, 'DATABASE_URL', 's3cret-pw');
    });
  });

  describe('bad values fail, naming the key', () => {
    const cases: [string, string[]][] = [
      ['PORT', ['abc', '-1', '65536', '3000.5', '0x10', ' 3000']],
      ['VEIL_DEMO_POOL', ['yes', 'TRUE ', 'off']],
      ['LOG_LEVEL', ['verbose', 'INFO', 'warning']],
      ['VEIL_PUBLIC_URL', ['not a url', 'veil.example.com', 'ftp://veil.example.com', 'javascript:alert(1)']],
      ['VEIL_DEFAULT_COUNTRY', ['us', 'USA', 'U', '1']],
      ['VEIL_DEFAULT_TTL_SECONDS', ['0', '-60', 'abc', '1.5', '31536001']],
      ['VEIL_REUSE_COOLDOWN_SECONDS', ['-1', 'soon']],
      [
        'VEIL_OUT_OF_SESSION',
        [
          'drop',
          'forward:',
          'forward:4155550100',
          'forward:+1 415 555 0100',
          'ask:',
          'ask:not a url',
          'ask:ftp://app.example.com/hook',
          'ask:https://user:pw@app.example.com/hook',
          'ASK:https://app.example.com/hook',
        ],
      ],
      ['VEIL_VOICE_LANGUAGE', ['english', 'en_GB', 'e', 'en-GB;x']],
      [
        'VEIL_CARRIER_WEIGHTS',
        ['twilio', 'twilio=x', 'acme=1', 'twilio=1001', 'twilio=-1', 'New York:twilio=1', 'twilio=1,'],
      ],
      ['VEIL_VOICE', ['Polly Amy', '<voice>', 'x'.repeat(65)]],
      [
        'VEIL_REPLENISH',
        ['US', 'US=x', 'us=1', 'XX=1', 'US/4a=1', 'US=1@acme', 'US=100000', 'US=1,US=2', 'US/415=1;GB=1'],
      ],
      ['VEIL_REPLENISH_BATCH', ['0', '101', 'x']],
      ['VEIL_REPLENISH_BUDGET', ['-1', '100001']],
      ['VEIL_REPLENISH_INTERVAL_SECONDS', ['0', '86401']],
      ['VEIL_REJECT_MESSAGE', ['x'.repeat(501)]],
      ['VEIL_REJECT_AUDIO_URL', ['closed.mp3', 'javascript:alert(1)', 'https://cdn.example/a b.mp3']],
      ['VEIL_GATHER_AUDIO_URL', ['ftp://cdn.example/code.mp3']],
      [
        'VEIL_INTERCEPT_URL',
        [
          'app.example.com/hook',
          'javascript:alert(1)',
          'ftp://app.example.com',
          'https://user:pw@app.example.com/',
        ],
      ],
    ];
    for (const [key, values] of cases) {
      it(key, () => {
        for (const value of values) assertRefused({ [key]: value }, key);
      });
    }

    it('order events: subjects, topics and brokers that are not', () => {
      const nats = { VEIL_NATS_URL: 'nats://127.0.0.1:4222' };
      for (const value of ['orders.>.x', 'orders..x', 'orders x', '.orders', 'orders.*x', '']) {
        if (value) assertRefused({ ...nats, VEIL_NATS_SUBJECT: value }, 'VEIL_NATS_SUBJECT');
      }
      for (const value of ['veil.orders.*', 'veil.>', 'a b']) {
        assertRefused({ ...nats, VEIL_NATS_DEAD_SUBJECT: value }, 'VEIL_NATS_DEAD_SUBJECT');
      }
      // A dead letter the consumer itself would read again.
      assertRefused({ ...nats, VEIL_NATS_DEAD_SUBJECT: 'orders.dead' }, 'VEIL_NATS_DEAD_SUBJECT');
      assertRefused({ ...nats, VEIL_NATS_SUBJECT: 'veil.*.dead' }, 'VEIL_NATS_DEAD_SUBJECT');
      assertRefused({ ...nats, VEIL_NATS_SUBJECT: '>' }, 'VEIL_NATS_DEAD_SUBJECT');
      assertRefused({ ...nats, VEIL_NATS_DURABLE: 'veil.orders' }, 'VEIL_NATS_DURABLE');
      for (const value of ['http://nats.example:4222', 'nats://a:4222,', 'nats:4222/x']) {
        assertRefused({ VEIL_NATS_URL: value }, 'VEIL_NATS_URL');
      }
      // Credentials in the URL are not echoed.
      assertRefused({ VEIL_NATS_URL: 'http://veil:s3cret-pw@nats:4222' }, 'VEIL_NATS_URL', 's3cret-pw');
      for (const value of ['kafka', 'kafka:x', 'a:9092,', 'a:9092 b:9092']) {
        assertRefused({ KAFKA_BROKERS: value }, 'KAFKA_BROKERS');
      }
      assertRefused({ VEIL_KAFKA_TOPIC: 'orders/in' }, 'VEIL_KAFKA_TOPIC');
      assertRefused(
        { KAFKA_BROKERS: 'kafka:9092', VEIL_KAFKA_DEAD_TOPIC: 'orders' },
        'VEIL_KAFKA_DEAD_TOPIC',
      );
    });

    it('an app webhook that is not https in production, saying why and not echoing the URL', () => {
      const http = 'http://app.example.com/hook?token=s3cret-token';
      assertRefused(
        { NODE_ENV: 'production', ...TEST_KEY_ENV, VEIL_OUT_OF_SESSION: `ask:${http}` },
        'VEIL_OUT_OF_SESSION',
        's3cret-token',
      );
      assertRefused(
        { NODE_ENV: 'production', ...TEST_KEY_ENV, VEIL_INTERCEPT_URL: http },
        'VEIL_INTERCEPT_URL',
        's3cret-token',
      );
      // Loopback is no exception: outside development it is https or nothing.
      assertRefused(
        { NODE_ENV: 'production', ...TEST_KEY_ENV, VEIL_INTERCEPT_URL: 'http://127.0.0.1:8080/hook' },
        'VEIL_INTERCEPT_URL',
      );
      assert.throws(() => loadConfig({ NODE_ENV: 'production', ...TEST_KEY_ENV, VEIL_INTERCEPT_URL: http }), {
        message: 'VEIL_INTERCEPT_URL: must be an https:// URL in production: it is sent real numbers',
      });
    });

    it('VEIL_DEFAULT_COUNTRY that is not a country', () => {
      // Shaped like one, but libphonenumber knows no such country: every national number would fail.
      assertRefused({ VEIL_DEFAULT_COUNTRY: 'XX' }, 'VEIL_DEFAULT_COUNTRY');
    });

    it('VEIL_API_KEY too short, without echoing it', () => {
      assertRefused({ VEIL_API_KEY: 'short-key' }, 'VEIL_API_KEY', 'short-key');
    });

    it('VEIL_METRICS_TOKEN too short, without echoing it; read as given when long enough', () => {
      assertRefused({ VEIL_METRICS_TOKEN: 'short-token' }, 'VEIL_METRICS_TOKEN', 'short-token');
      assert.equal(loadConfig({ VEIL_METRICS_TOKEN: 'm'.repeat(16) }).metricsToken, 'm'.repeat(16));
      assert.equal(loadConfig({}).metricsToken, undefined);
    });

    it('says what is allowed, from the schema', () => {
      const messages: [Record<string, string>, string][] = [
        [
          { LOG_LEVEL: 'x' },
          'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent, got "x"',
        ],
        [{ PORT: 'abc' }, 'PORT: must be an integer from 0 to 65535, got "abc"'],
        [
          { VEIL_DEFAULT_TTL_SECONDS: '0' },
          'VEIL_DEFAULT_TTL_SECONDS: must be an integer from 1 to 31536000, got "0"',
        ],
        [{ VEIL_DEMO_POOL: 'yes' }, 'VEIL_DEMO_POOL: must be true or false, got "yes"'],
        [
          { VEIL_OUT_OF_SESSION: 'drop' },
          'VEIL_OUT_OF_SESSION: must be reject, forward:+E164 or ask:https://URL, got "drop"',
        ],
        [
          { VEIL_DEFAULT_COUNTRY: 'us' },
          'VEIL_DEFAULT_COUNTRY: must be an ISO country code like US, got "us"',
        ],
        [{ VEIL_API_KEY: 'short-key' }, 'VEIL_API_KEY: must be at least 16 characters'],
      ];
      for (const [env, message] of messages) assert.throws(() => loadConfig(env), { message });
    });

    it('Twilio credentials given by halves or malformed', () => {
      assertRefused({ TWILIO_ACCOUNT_SID: TWILIO_SID }, 'TWILIO_AUTH_TOKEN');
      assertRefused({ TWILIO_AUTH_TOKEN: 'tok-s3cret' }, 'TWILIO_ACCOUNT_SID', 'tok-s3cret');
      assertRefused(
        { TWILIO_ACCOUNT_SID: 'AC123', TWILIO_AUTH_TOKEN: 'tok-s3cret' },
        'TWILIO_ACCOUNT_SID',
        'tok-s3cret',
      );
      // Both empty: Twilio is simply off.
      assert.equal(loadConfig({ TWILIO_ACCOUNT_SID: '', TWILIO_AUTH_TOKEN: '' }).twilio, undefined);
    });

    it('Alibaba PNS: all three of key id, secret and pool key or none; its URL, timeout and the binding worker', () => {
      const aliyun = {
        ALIYUN_ACCESS_KEY_ID: 'LTAI5tKeyId',
        ALIYUN_ACCESS_KEY_SECRET: 'ali-s3cret',
        ALIYUN_PNS_POOL_KEY: 'FC1000',
      };
      assert.deepEqual(loadConfig(aliyun).aliyun, {
        accessKeyId: 'LTAI5tKeyId',
        accessKeySecret: 'ali-s3cret',
        poolKey: 'FC1000',
        url: 'https://dyplsapi.aliyuncs.com',
        timeoutMs: 5000,
      });
      assert.deepEqual(loadConfig({}).binding, { maxAttempts: 6, intervalMs: 1000 });
      assert.deepEqual(
        loadConfig({ VEIL_BINDING_MAX_ATTEMPTS: '3', VEIL_BINDING_INTERVAL_SECONDS: '2' }).binding,
        { maxAttempts: 3, intervalMs: 2000 },
      );
      assert.equal(loadConfig({}).aliyun, undefined);
      const { ALIYUN_PNS_POOL_KEY: _, ...noPool } = aliyun;
      assertRefused(noPool, 'ALIYUN_PNS_POOL_KEY', 'ali-s3cret');
      assertRefused({ ...aliyun, ALIYUN_PNS_TIMEOUT_MS: '10' }, 'ALIYUN_PNS_TIMEOUT_MS', 'ali-s3cret');
      assertRefused({ VEIL_BINDING_MAX_ATTEMPTS: '0' }, 'VEIL_BINDING_MAX_ATTEMPTS');
      assertRefused(
        {
          ...aliyun,
          NODE_ENV: 'production',
          ...TEST_KEY_ENV,
          VEIL_API_KEY: 'k'.repeat(16),
          ALIYUN_PNS_URL: 'http://pns.example',
        },
        'ALIYUN_PNS_URL',
        'ali-s3cret',
      );
    });

    it('TWILIO_API_URL: a URL, https in production but for a loopback host', () => {
      const twilio = { TWILIO_ACCOUNT_SID: TWILIO_SID, TWILIO_AUTH_TOKEN: 'tok-s3cret' };
      assert.equal(
        loadConfig({ ...twilio, TWILIO_API_URL: 'http://127.0.0.1:4010/' }).twilio?.apiUrl,
        'http://127.0.0.1:4010',
      );
      assertRefused({ ...twilio, TWILIO_API_URL: 'not a url' }, 'TWILIO_API_URL', 'tok-s3cret');
      assertRefused(
        {
          ...twilio,
          NODE_ENV: 'production',
          ...TEST_KEY_ENV,
          VEIL_API_KEY: 'k'.repeat(16),
          TWILIO_API_URL: 'http://relay.example',
        },
        'TWILIO_API_URL',
        'tok-s3cret',
      );
    });
  });
});

describe('the Environment schema', () => {
  const variables = Object.entries(
    Environment.properties as Record<string, { description?: string; default?: unknown }>,
  );

  it('describes every variable', () => {
    assert.ok(variables.length >= 15, `only ${variables.length} variables`);
    for (const [key, schema] of variables) {
      assert.equal(typeof schema.description, 'string', `${key} has no description`);
      assert.ok((schema.description as string).length > 10, key);
    }
  });

  it('declares what loadConfig reads: a variable it does not declare is ignored', () => {
    for (const key of ['PORT', 'DATABASE_URL', 'VEIL_API_KEY', 'TWILIO_AUTH_TOKEN', 'LOG_LEVEL']) {
      assert.ok(key in Environment.properties, key);
    }
    assert.equal(loadConfig({ VEIL_UNKNOWN: 'whatever', PATH: '/bin' }).port, 3000);
  });

  it('its defaults are those of DESIGN §6', () => {
    const defaults = Object.fromEntries(variables.map(([key, schema]) => [key, schema.default]));
    assert.equal(defaults.PORT, 3000);
    assert.equal(defaults.DATABASE_URL, 'sqlite:./data/veil.db');
    assert.equal(defaults.VEIL_DEFAULT_TTL_SECONDS, 86_400);
    assert.equal(defaults.VEIL_REUSE_COOLDOWN_SECONDS, 3600);
    assert.equal(defaults.VEIL_OUT_OF_SESSION, 'reject');
    assert.equal(defaults.LOG_LEVEL, 'info');
    assert.equal(defaults.VEIL_NATS_SUBJECT, 'orders.>');
    assert.equal(defaults.VEIL_KAFKA_TOPIC, 'orders');
    assert.equal(defaults.VEIL_NATS_URL, undefined);
    assert.equal(defaults.KAFKA_BROKERS, undefined);
  });
});

describe('npm start', () => {
  it('exits non-zero at once on a bad value, naming the key', async () => {
    const started = Date.now();
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((done, fail) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: PROJECT,
        // A database that does not exist: nothing may be opened before the config is checked.
        env: {
          PATH: process.env.PATH,
          NODE_ENV: 'development',
          PORT: 'abc',
          DATABASE_URL: 'sqlite::memory:',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(new Error(`still running after 10 s; stdout: ${stdout}`));
      }, 10_000);
      child.on('error', fail);
      child.on('exit', (code) => {
        clearTimeout(timer);
        done({ code, stdout, stderr });
      });
    });
    assert.notEqual(code, 0);
    assert.notEqual(code, null);
    assert.match(stderr, /PORT/);
    assert.match(stderr, /abc/);
    assert.doesNotMatch(stdout, /listening/i);
    assert.ok(Date.now() - started < 10_000);
  });
});

describe('the keys that seal real numbers', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'veil-keys-'));

  it('are required in production, from the environment or a key file, naming the variables', () => {
    assertRefused({ NODE_ENV: 'production' }, 'VEIL_DATA_KEYS');
    assertRefused({ ...TEST_KEY_ENV, VEIL_INDEX_KEY: '' }, 'VEIL_INDEX_KEY');
    assertRefused(
      { VEIL_DATA_KEYS: 'k1:c2hvcnQ=', VEIL_INDEX_KEY: TEST_KEY_ENV.VEIL_INDEX_KEY },
      'VEIL_DATA_KEYS',
    );
    assertRefused(
      { VEIL_DATA_KEYS: TEST_KEY_ENV.VEIL_DATA_KEYS, VEIL_INDEX_KEY: 'c2hvcnQ=' },
      'VEIL_INDEX_KEY',
    );
    assertRefused({ ...TEST_KEY_ENV, VEIL_KEY_FILE: '/etc/veil/keys.json' }, 'VEIL_KEY_FILE');
    const production = loadConfig({ NODE_ENV: 'production', VEIL_KEY_FILE: '/etc/veil/keys.json' });
    assert.deepEqual(production.dataKeys, { from: 'file', file: '/etc/veil/keys.json', generate: false });
    const given = loadConfig({ NODE_ENV: 'production', ...TEST_KEY_ENV }).dataKeys;
    assert.equal(given.from, 'environment');
  });

  it('are generated beside the database in development, once, readable by their owner only, and kept', () => {
    const folder = dir();
    const source = loadConfig({ DATABASE_URL: `sqlite:${join(folder, 'veil.db')}` }).dataKeys;
    assert.deepEqual(source, { from: 'file', file: join(folder, 'veil-keys.json'), generate: true });
    const warnings: unknown[] = [];
    const first = loadDataKeys(source, { warn: (...args: unknown[]) => warnings.push(args) } as never);
    assert.equal(warnings.length, 1);
    assert.equal(statSync(join(folder, 'veil-keys.json')).mode & 0o777, 0o600);
    const again = loadDataKeys(source, { warn: (...args: unknown[]) => warnings.push(args) } as never);
    assert.equal(warnings.length, 1, 'a second start generates nothing');
    assert.deepEqual(again, first);
    // The same file read as VEIL_KEY_FILE; a broken one is refused naming the variable, never a key.
    assert.deepEqual(readKeyFile(join(folder, 'veil-keys.json')), first);
    writeFileSync(join(folder, 'bad.json'), '{"indexKey": "c2hvcnQ=", "dataKeys": []}');
    assert.throws(() => readKeyFile(join(folder, 'bad.json')), /VEIL_KEY_FILE.*index key must be 32 bytes/);
    assert.throws(() => readKeyFile(join(folder, 'missing.json')), /VEIL_KEY_FILE.*does not exist/);
    assert.deepEqual(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).dataKeys, { from: 'memory' });
  });
});
