import { Command, Option } from 'commander';
import { maskNumbersInText } from '../domain/phone.ts';
import { NUMBER_STATUSES } from '../domain/pool.ts';
import { PROVIDER_NAMES } from '../providers/registry.ts';
import { collect } from './input.ts';
import { guarded, jsonOption } from './output.ts';

/**
 * The `veil` command line (DESIGN §5): its commands, options and help. What each command does
 * lives in commands/, loaded only when that command runs, so that the CLI starts without loading
 * the database drivers, the server or the carriers' packages it does not need.
 */
export function buildProgram(): Command {
  const program = new Command('veil')
    .description(
      'Veil, self-hosted number masking. numbers and sessions work on the database of DATABASE_URL ' +
        '(default ./data/veil.db), with or without a running server; call and sms talk to the running server.',
    )
    // Commander's usage errors read like the CLI's own (one line, `veil: ...`), and the bad argument
    // they repeat is masked: a phone number typed there is not echoed back.
    .configureOutput({
      outputError: (text, write) => write(maskNumbersInText(text.replace(/^error: /, 'veil: '))),
    });

  program
    .command('serve')
    .description('start the server as npm start does: API, webhooks, workers')
    .addOption(jsonOption())
    .action((options: { json?: boolean }) =>
      guarded(options.json, async (out) => (await import('./commands/serve.ts')).serve(out)),
    );

  const numbers = program.command('numbers').description('the pool of proxy numbers');
  numbers
    .command('add')
    .description('add a proxy number to the pool')
    .argument('<number>', 'the proxy number, E.164 (+14155550150)')
    .option(
      '--provider <name>',
      `its carrier: ${PROVIDER_NAMES.join(', ')} (sim is refused in production)`,
      'sim',
    )
    .option('--region <code>', 'area code (derived from the number when not given)')
    .option('--tag <key=value>', 'a tag such as city=sf; repeat for more', collect, [])
    .option('--max-sessions <n>', 'most open sessions it may serve at once (default: no cap)')
    .option('--capabilities <list>', 'voice, sms or voice,sms (default: both)')
    .addOption(jsonOption())
    .action((number: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/numbers.ts')).add(number, options, out)),
    );
  numbers
    .command('import')
    .description('buy numbers through a carrier’s API into the pool, showing each as it is bought')
    .requiredOption(
      '--provider <name>',
      'the carrier to buy from: twilio, vonage, plivo, telnyx, or sim (made-up numbers, not in production)',
    )
    .requiredOption('--country <code>', 'ISO country code of the numbers, e.g. US')
    .option('--area-code <code>', 'the area code they should have, e.g. 415')
    .requiredOption('--count <n>', 'how many to buy, 1 to 100')
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) => (await import('./commands/numbers.ts')).buy(options, out)),
    );
  listing(
    numbers
      .command('list')
      .description('list the pool with each number’s current load')
      .addOption(new Option('--status <status>', 'only numbers in this state').choices(NUMBER_STATUSES))
      .option('--provider <name>', 'only this carrier’s numbers')
      .option('--country <code>', 'only this country’s numbers (ISO code, e.g. US)'),
  ).action((options) =>
    guarded(options.json, async (out) => (await import('./commands/numbers.ts')).list(options, out)),
  );
  numbers
    .command('retire')
    .description('take a number out of the pool: no new sessions; retired once no open session holds it')
    .argument('<id-or-number>', 'the number’s id (num_...) or the number itself, E.164')
    .addOption(jsonOption())
    .action((ref: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/numbers.ts')).retire(ref, out)),
    );

  const blocklist = program
    .command('blocklist')
    .description('real numbers never connected: their calls and texts, and calls and texts to them');
  blocklist
    .command('add')
    .description('block a number')
    .argument('<number>', 'the real number, E.164 (+14155550123)')
    .option('--reason <text>', 'why, for your records')
    .addOption(jsonOption())
    .action((number: string, options) =>
      guarded(options.json, async (out) =>
        (await import('./commands/blocklist.ts')).add(number, options, out),
      ),
    );
  listing(
    blocklist
      .command('list')
      .description('list the blocked numbers, a page at a time (masked; --json shows them)'),
  ).action((options) =>
    guarded(options.json, async (out) => (await import('./commands/blocklist.ts')).list(options, out)),
  );
  blocklist
    .command('remove')
    .description('unblock a number')
    .argument('<number>', 'the blocked number, E.164')
    .addOption(jsonOption())
    .action((number: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/blocklist.ts')).remove(number, out)),
    );

  const keys = program
    .command('keys')
    .description('API keys: made with a secret shown once, listed without it, rotated and revoked');
  keys
    .command('create')
    .description('make a key; its secret is printed this once')
    .argument('<name>', 'what the key is for')
    .option('--scope <scope>', 'admin, sessions, route or read; repeat for more', collect, [])
    .option('--tenant <id>', "the tenant the key acts for (default: the installation's own)")
    .addOption(jsonOption())
    .action((name: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/keys.ts')).create(name, options, out)),
    );
  keys
    .command('list')
    .description("a tenant's keys, revoked ones included; never a secret")
    .option('--tenant <id>', "the tenant (default: the installation's own)")
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) => (await import('./commands/keys.ts')).list(options, out)),
    );
  keys
    .command('revoke')
    .description('revoke a key: every instance refuses it from its next request')
    .argument('<id>', 'the key id (key_...)')
    .addOption(jsonOption())
    .action((id: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/keys.ts')).revoke(id, out)),
    );
  keys
    .command('rotate')
    .description('give a key a new secret, printed this once; the old one stops working')
    .argument('<id>', 'the key id (key_...)')
    .addOption(jsonOption())
    .action((id: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/keys.ts')).rotate(id, out)),
    );

  keys
    .command('rotate-data')
    .description(
      'seal every stored real number (and event payload) again under the first data key of VEIL_DATA_KEYS or the key file, with progress; older keys may be dropped once it is done',
    )
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) => (await import('./commands/keys.ts')).rotateData(options, out)),
    );

  const providers = program
    .command('providers')
    .description('carriers: their health, and the one-click downgrade');
  providers
    .command('list')
    .description('the enabled carriers, switched on or off, and their health')
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) => (await import('./commands/providers.ts')).list(out)),
    );
  for (const [verb, enabled, what] of [
    [
      'disable',
      false,
      'switch a carrier off: its numbers go to no new session, and open sessions move to carriers in use',
    ],
    ['enable', true, 'switch a carrier back on'],
  ] as const) {
    providers
      .command(verb)
      .description(what)
      .argument('<name>', 'the carrier: twilio, vonage, plivo, telnyx, aliyun, sim')
      .addOption(jsonOption())
      .action((name: string, options) =>
        guarded(options.json, async (out) =>
          (await import('./commands/providers.ts')).setEnabled(name, enabled, out),
        ),
      );
  }

  const events = program
    .command('events')
    .description('what Veil told your app: the outbox, and its deliveries to your webhook endpoints');
  listing(
    events
      .command('list')
      .description('the events, oldest first, each with where its deliveries stand')
      .option('--type <type>', 'only events of this type, e.g. session.rebound'),
  ).action((options) =>
    guarded(options.json, async (out) => (await import('./commands/events.ts')).list(options, out)),
  );
  events
    .command('redeliver')
    .description('send an event again to every endpoint that wants it, with the same webhook-id')
    .argument('<id>', 'the event, evt_...')
    .addOption(jsonOption())
    .action((id: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/events.ts')).redeliver(id, out)),
    );

  listing(
    program
      .command('interactions')
      .description('the call and text log across sessions')
      .command('list')
      .description(
        'the call and text log across sessions, oldest first, strangers’ refused calls included (numbers masked; --json shows them)',
      )
      .option('--action <action>', 'only connect, forward, gather or reject')
      .option('--reason <reason>', 'only refusals for this reason, e.g. no_session')
      .option('--channel <channel>', 'only voice or sms'),
  ).action((options) =>
    guarded(options.json, async (out) => (await import('./commands/interactions.ts')).list(options, out)),
  );

  const sessions = program
    .command('sessions')
    .description('sessions: two people talking through proxy numbers');
  sessions
    .command('create')
    .description('open a session between two people, giving each a proxy number')
    .option(
      '--participant <E.164[:label]>',
      'a participant, e.g. +14155550101:customer; give two',
      collect,
      [],
    )
    .addOption(
      new Option('--mode <mode>', 'per-participant: a proxy each; shared: one for both').choices([
        'per-participant',
        'shared',
      ]),
    )
    .option('--external-id <id>', 'your order id: the same id and request again returns the same session')
    .option('--ttl <seconds>', 'how long the session lives (default: VEIL_DEFAULT_TTL_SECONDS)')
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) => (await import('./commands/sessions.ts')).create(options, out)),
    );
  sessions
    .command('get')
    .description('show a session: its participants, their real numbers and proxies')
    .argument('<id>', 'the session id (ses_...)')
    .addOption(jsonOption())
    .action((id: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/sessions.ts')).get(id, out)),
    );
  sessions
    .command('close')
    .description('close a session; its proxy numbers are released at once')
    .argument('<id>', 'the session id (ses_...)')
    .addOption(jsonOption())
    .action((id: string, options) =>
      guarded(options.json, async (out) => (await import('./commands/sessions.ts')).close(id, out)),
    );
  listing(
    sessions
      .command('list')
      .description('list sessions, newest first (real numbers masked)')
      .addOption(
        new Option('--status <status>', 'only sessions in this state').choices(['open', 'closed', 'expired']),
      )
      .option('--external-id <id>', 'only the sessions of this order id'),
  ).action((options) =>
    guarded(options.json, async (out) => (await import('./commands/sessions.ts')).list(options, out)),
  );

  program
    .command('hooks')
    .description('the app’s webhooks: ask (VEIL_OUT_OF_SESSION=ask:URL) and intercept (VEIL_INTERCEPT_URL)')
    .command('secret')
    .description(
      'print the secret their requests are signed with (Standard Webhooks, whsec_...); made and kept in the database on first use',
    )
    .addOption(jsonOption())
    .action((options: { json?: boolean }) =>
      guarded(options.json, async (out) => (await import('./commands/hooks.ts')).secret(out)),
    );

  const server = '--url <base>';
  const serverHelp = 'the running server (default: VEIL_PUBLIC_URL, else http://HOST:PORT)';
  program
    .command('call')
    .description('place a call on the simulator through the running server; show how it was routed')
    .requiredOption('--from <E.164>', 'the caller’s real number')
    .requiredOption('--to <E.164>', 'the proxy number dialled')
    .option('--digits <code>', 'the extension to key, when the number asks for one')
    .option(server, serverHelp)
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) =>
        (await import('./commands/simulate.ts')).simulate('voice', options, out),
      ),
    );
  program
    .command('sms')
    .description('send a text on the simulator through the running server; show how it was routed')
    .requiredOption('--from <E.164>', 'the sender’s real number')
    .requiredOption('--to <E.164>', 'the proxy number texted')
    .requiredOption('--body <text>', 'the message')
    .option(server, serverHelp)
    .addOption(jsonOption())
    .action((options) =>
      guarded(options.json, async (out) =>
        (await import('./commands/simulate.ts')).simulate('sms', options, out),
      ),
    );

  return program;
}

/** The options every list takes: paging as the API pages, and --json. */
function listing(command: Command): Command {
  return command
    .option('--limit <n>', 'how many to show, 1 to 500', '50')
    .option('--cursor <id>', 'continue after this one (the nextCursor of the previous page)')
    .addOption(jsonOption());
}
