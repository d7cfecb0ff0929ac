import { ApiError, api, forgetKey, storedKey, storeKey } from './api.js';
import { maskNumbersInText, shown } from './mask.js';
import { GROUPINGS, PoolChart, poolRows } from './pool-chart.js';
import htm from './vendor/htm.mjs';
import { Component, h, render } from './vendor/preact.mjs';

const html = htm.bind(h);

/** How often the dashboard reads the API again on its own. */
const REFRESH_MS = 5000;

const time = (iso) =>
  iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' }) : '';
const problem = (error) => (error instanceof ApiError ? `${error.message} (${error.status})` : String(error));

/** The API key form: a password field, kept in sessionStorage once the API has accepted it. */
class Login extends Component {
  state = { error: null, busy: false };
  submit = async (event) => {
    event.preventDefault();
    const key = this.input.value.trim();
    if (!key) return;
    this.setState({ busy: true, error: null });
    storeKey(key);
    try {
      await api('GET', '/v1/pool');
      this.input.value = '';
      this.props.onLogin();
    } catch (error) {
      forgetKey();
      this.setState({ busy: false, error: problem(error) });
    }
  };
  render(_props, { error, busy }) {
    return html`<section class="login">
      <h1>Veil</h1>
      <form id="login" onSubmit=${this.submit}>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="off" spellcheck="false" required
          ref=${(el) => {
            this.input = el;
          }} />
        <button type="submit" disabled=${busy}>Log in</button>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <p class="hint">The key stays in this tab's session storage: never in a URL or a cookie.</p>
      </form>
    </section>`;
  }
}

/** Pool use by country, region or carrier, as a chart and a table. */
function Pool({ groups, grouping, onGrouping }) {
  const rows = poolRows(groups, grouping);
  return html`<section id="pool">
    <header>
      <h2>Pool</h2>
      <label>by <select id="pool-grouping" value=${grouping} onChange=${(e) => onGrouping(e.target.value)}>
        ${Object.keys(GROUPINGS).map((g) => html`<option value=${g}>${g === 'all' ? 'country, region, carrier' : g}</option>`)}
      </select></label>
    </header>
    ${rows.length === 0 ? html`<p class="empty">No numbers in the pool.</p>` : html`<${PoolChart} rows=${rows} />`}
    <table class="pool-table">
      <thead><tr><th></th><th>free</th><th>in use</th><th>draining</th><th>active</th></tr></thead>
      <tbody>
        ${rows.map(
          (r) =>
            html`<tr><th>${r.label}</th><td>${r.free}</td><td>${r.inUse}</td><td>${r.draining}</td><td>${r.active}</td></tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

/** The carriers with their health and the one-click downgrade / recovery. */
function Carriers({ providers, error, onSwitch }) {
  return html`<section id="carriers">
    <h2>Carriers</h2>
    ${error && html`<p class="note">${error}</p>`}
    <table>
      <thead><tr><th>carrier</th><th>switch</th><th>health</th><th>errors</th><th>latency</th><th></th></tr></thead>
      <tbody>
        ${providers.map(
          (p) => html`<tr data-provider=${p.name}>
            <th>${p.name}</th>
            <td class=${p.enabled ? 'on' : 'off'}>${p.enabled ? 'enabled' : 'downgraded'}</td>
            <td class=${`health-${p.health}`}>${p.health}</td>
            <td>${Math.round(p.errorRate * 100)}% of ${p.calls}</td>
            <td>${p.latencyMs === null ? '–' : `${Math.round(p.latencyMs)} ms`}</td>
            <td>
              <button class="switch" onClick=${() => onSwitch(p.name, !p.enabled)}>
                ${p.enabled ? 'Downgrade' : 'Recover'}
              </button>
            </td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

/** The session's people: labels, masked real numbers and the proxies they dial. */
function People({ session }) {
  const proxies = proxiesOf(session);
  return session.participants.map(
    (p) =>
      html`<span class="person">${p.label ?? 'participant'} ${shown(p.number, proxies)} → ${p.proxyNumber}</span>`,
  );
}

const proxiesOf = (session) => new Set(session.participants.map((p) => p.proxyNumber));

/** Open sessions, or the sessions of one externalId. */
class Sessions extends Component {
  submit = (event) => {
    event.preventDefault();
    this.props.onSearch(this.input.value.trim());
  };
  render({ sessions, search, selected, onSelect }) {
    return html`<section id="sessions">
      <header>
        <h2>${search ? `Sessions of ${search}` : 'Open sessions'}</h2>
        <form id="session-search" onSubmit=${this.submit}>
          <input id="external-id" type="search" placeholder="externalId (order id)" value=${search}
            ref=${(el) => {
              this.input = el;
            }} />
          <button type="submit">Search</button>
        </form>
      </header>
      ${sessions.length === 0 && html`<p class="empty">No session found.</p>`}
      <table>
        <thead><tr><th>externalId</th><th>status</th><th>mode</th><th>people</th><th>expires</th></tr></thead>
        <tbody>
          ${sessions.map(
            (s) => html`<tr class=${s.id === selected ? 'session selected' : 'session'} data-session=${s.id}
                onClick=${() => onSelect(s.id)}>
              <td><a href="#" onClick=${(e) => e.preventDefault()}>${s.externalId ?? s.id}</a></td>
              <td>${s.status}</td>
              <td>${s.mode}</td>
              <td><${People} session=${s} /></td>
              <td>${time(s.expiresAt)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
  }
}

/** One session's calls and texts, oldest first. */
function Timeline({ session, interactions }) {
  if (!session)
    return html`<section id="timeline"><h2>Timeline</h2><p class="empty">Pick a session.</p></section>`;
  const proxies = proxiesOf(session);
  return html`<section id="timeline">
    <h2>Timeline of ${session.externalId ?? session.id}</h2>
    <p class="people"><${People} session=${session} /></p>
    ${interactions.length === 0 && html`<p class="empty">No call or text yet.</p>`}
    <ol class="timeline">
      ${interactions.map(
        (i) => html`<li class=${`interaction ${i.action}`} data-interaction=${i.id}>
          <time>${time(i.createdAt)}</time>
          <span class="channel">${i.channel === 'voice' ? 'call' : 'text'}</span>
          <span>${shown(i.from, proxies)} → ${shown(i.to, proxies)}</span>
          ${i.target && html`<span>to ${shown(i.target, proxies)} as ${shown(i.callerId, proxies)}</span>`}
          <span class="action">${i.action}${i.reason ? ` (${i.reason})` : ''}</span>
          <span class="status">${i.status}${i.durationSeconds === null ? '' : `, ${i.durationSeconds} s`}</span>
        </li>`,
      )}
    </ol>
  </section>`;
}

/** What an event is about, in a line: its plain fields, every number in them masked. */
function eventSummary(event) {
  const fields = Object.entries(event.data)
    // The session's id is one click away in its own panel; the order id says more here.
    .filter(([k, v]) => k !== 'id' && ['string', 'number', 'boolean'].includes(typeof v))
    .slice(0, 6)
    .map(([k, v]) => `${k}: ${v}`);
  return maskNumbersInText(fields.join(', '));
}

function Events({ events }) {
  return html`<section id="events">
    <h2>Recent events</h2>
    ${events.length === 0 && html`<p class="empty">No event yet.</p>`}
    <table>
      <tbody>
        ${events.map(
          (e) => html`<tr class="event" data-event=${e.id}>
            <td><time>${time(e.createdAt)}</time></td>
            <td class="type">${e.type}</td>
            <td>${eventSummary(e)}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

/** The dashboard once logged in: every panel read again every REFRESH_MS and on demand. */
class Dashboard extends Component {
  state = {
    groups: [],
    grouping: 'all',
    providers: [],
    providersError: null,
    sessions: [],
    search: '',
    selected: null,
    session: null,
    interactions: [],
    events: [],
    error: null,
    updatedAt: null,
  };
  componentDidMount() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }
  componentWillUnmount() {
    clearInterval(this.timer);
  }
  /** Reads every panel; a 401 (the key revoked) logs out. */
  refresh = async () => {
    try {
      const { search, selected } = this.state;
      const sessionsQuery = search
        ? `externalId=${encodeURIComponent(search)}&limit=50`
        : 'status=open&limit=50';
      const [pool, sessions, events, providers, timeline] = await Promise.all([
        api('GET', '/v1/pool'),
        api('GET', `/v1/sessions?${sessionsQuery}`),
        api('GET', '/v1/events?order=newest&limit=15'),
        this.providers(),
        selected ? this.timeline(selected) : { session: null, interactions: [] },
      ]);
      this.setState({
        groups: pool.data,
        sessions: sessions.data,
        events: events.data,
        ...providers,
        ...timeline,
        error: null,
        updatedAt: new Date().toISOString(),
      });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return this.props.onLogout();
      this.setState({ error: problem(error) });
    }
  };
  async providers() {
    try {
      return { providers: (await api('GET', '/v1/providers')).data, providersError: null };
    } catch (error) {
      // The carriers are the whole installation's: a tenant's key sees the rest, not these.
      if (error instanceof ApiError && error.status === 403) {
        return {
          providers: [],
          providersError: `Carriers need the installation's admin key: ${error.message}`,
        };
      }
      throw error;
    }
  }
  async timeline(id) {
    const [session, interactions] = await Promise.all([
      api('GET', `/v1/sessions/${encodeURIComponent(id)}`),
      api('GET', `/v1/sessions/${encodeURIComponent(id)}/interactions?limit=200`),
    ]);
    return { session, interactions: interactions.data };
  }
  search = (search) => this.setState({ search, selected: null }, this.refresh);
  select = (selected) => this.setState({ selected }, this.refresh);
  switchCarrier = async (name, enabled) => {
    try {
      await api('PATCH', `/v1/providers/${encodeURIComponent(name)}`, { enabled });
    } catch (error) {
      this.setState({ error: problem(error) });
    }
    await this.refresh();
  };
  render(_props, s) {
    return html`<div class="dashboard">
      <header class="top">
        <h1>Veil</h1>
        <span class="updated">${s.updatedAt ? `updated ${time(s.updatedAt)}` : 'loading…'}</span>
        <button id="refresh" onClick=${this.refresh}>Refresh</button>
        <button id="logout" onClick=${this.props.onLogout}>Log out</button>
      </header>
      ${s.error && html`<p class="error" role="alert">${s.error}</p>`}
      <div class="grid">
        <${Pool} groups=${s.groups} grouping=${s.grouping} onGrouping=${(grouping) => this.setState({ grouping })} />
        <${Carriers} providers=${s.providers} error=${s.providersError} onSwitch=${this.switchCarrier} />
        <${Sessions} sessions=${s.sessions} search=${s.search} selected=${s.selected}
          onSearch=${this.search} onSelect=${this.select} />
        <${Timeline} session=${s.session} interactions=${s.interactions} />
        <${Events} events=${s.events} />
      </div>
    </div>`;
  }
}

class App extends Component {
  state = { loggedIn: storedKey() !== null };
  logout = () => {
    forgetKey();
    this.setState({ loggedIn: false });
  };
  render(_props, { loggedIn }) {
    return loggedIn
      ? html`<${Dashboard} onLogout=${this.logout} />`
      : html`<${Login} onLogin=${() => this.setState({ loggedIn: true })} />`;
  }
}

const root = document.getElementById('root');
root.textContent = '';
render(html`<${App} />`, root);
