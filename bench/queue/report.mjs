// Prints the benchmark table from the JSON lines of both sides.
//   node report.mjs catalytic.jsonl bullmq.jsonl

import { readFileSync } from 'node:fs';

const read = (file) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));

const rows = new Map();
for (const r of [...read(process.argv[2]), ...read(process.argv[3])]) {
  if (!r.metric) continue;
  const row = rows.get(r.metric) ?? { unit: r.unit };
  row[r.side] = r.value;
  rows.set(r.metric, row);
}

const higherIsBetter = (unit) => unit === 'jobs/s';
const fmt = (v, unit) =>
  v === undefined ? '—' : unit === 'jobs/s' ? `${Math.round(v).toLocaleString('en-US')} ${unit}` : `${v.toFixed(unit === 'ms' ? 2 : 1)} ${unit}`;

const targets = {
  throughput_1_process: (r) => r.catalytic >= r.bullmq,
  throughput_2_process: (r) => r.catalytic >= r.bullmq,
  pickup_p50: (r) => r.catalytic < 5,
  reclaim_after_kill: (r) => r.catalytic < 15,
};

const lines = [['metric', 'catalytic', 'bullmq', 'ratio', 'target']];
for (const [metric, r] of rows) {
  let ratio = '—';
  if (r.catalytic !== undefined && r.bullmq !== undefined && r.catalytic > 0 && r.bullmq > 0) {
    ratio = higherIsBetter(r.unit)
      ? `${(r.catalytic / r.bullmq).toFixed(2)}x throughput`
      : `${(r.bullmq / r.catalytic).toFixed(2)}x faster`;
  }
  const target = targets[metric] ? (targets[metric](r) ? 'met' : 'MISSED') : '';
  lines.push([metric, fmt(r.catalytic, r.unit), fmt(r.bullmq, r.unit), ratio, target]);
}
const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
for (const [i, l] of lines.entries()) {
  console.log(l.map((c, j) => c.padEnd(widths[j])).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log('\nratio: ours relative to BullMQ (throughput: ours ÷ theirs; times: theirs ÷ ours).');
console.log('reclaim: BullMQ defaults (30 s lock, 30 s stalled check); *_lock_10s sets both to 10 s,');
console.log('our claim idle time is 10 s. No-op jobs, 50 concurrent per worker process, one Redis.');
