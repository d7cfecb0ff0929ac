import { Component, h } from './vendor/preact.mjs';

/** How the pool's groups can be added up, as the operator picks. */
export const GROUPINGS = {
  country: (g) => g.country,
  region: (g) => `${g.country} ${g.region || '(none)'}`,
  carrier: (g) => g.provider,
  all: (g) => `${g.country} ${g.region || '(none)'} · ${g.provider}`,
};

/** The pool's counts (GET /v1/pool) added up by `grouping`: one row per label. */
export function poolRows(groups, grouping) {
  const labelOf = GROUPINGS[grouping] ?? GROUPINGS.all;
  const rows = new Map();
  for (const g of groups) {
    const label = labelOf(g);
    const row = rows.get(label) ?? { label, free: 0, inUse: 0, draining: 0, active: 0 };
    row.free += g.free;
    row.inUse += g.inUse;
    row.draining += g.draining;
    row.active += g.active;
    rows.set(label, row);
  }
  return [...rows.values()];
}

const SERIES = [
  { key: 'free', label: 'free', colour: '#16a34a' },
  { key: 'inUse', label: 'in use', colour: '#2563eb' },
  { key: 'draining', label: 'draining', colour: '#d97706' },
];

/** A bar chart (Chart.js, loaded as a classic script beside this module) of free, in use, draining. */
export class PoolChart extends Component {
  componentDidMount() {
    this.chart = new window.Chart(this.canvas, {
      type: 'bar',
      data: this.data(),
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: 'bottom' } },
      },
    });
  }
  componentDidUpdate() {
    this.chart.data = this.data();
    this.chart.update();
  }
  componentWillUnmount() {
    this.chart.destroy();
  }
  data() {
    const rows = this.props.rows;
    return {
      labels: rows.map((r) => r.label),
      datasets: SERIES.map((s) => ({
        label: s.label,
        data: rows.map((r) => r[s.key]),
        backgroundColor: s.colour,
      })),
    };
  }
  render() {
    return h(
      'div',
      { class: 'chart' },
      h('canvas', {
        id: 'pool-chart',
        role: 'img',
        'aria-label': 'pool use: free, in use and draining numbers',
        ref: (c) => {
          this.canvas = c;
        },
      }),
    );
  }
}
