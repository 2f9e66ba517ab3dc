// BullMQ side of scripts/bench-queue: the same scenarios as jobs/examples/queue_bench.rs,
// printed the same way (one JSON object per line, "side": "bullmq").
//
//   node bullmq.mjs all [--redis URL] [--jobs N] [--concurrency C]
//   node bullmq.mjs worker --prefix P --mode noop|latency|hang --concurrency C [--lock-ms L]
//
// Children read stdin; at EOF they close gracefully and print a JSON report line.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';

const QUEUE = 'bench';
const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const redisUrl = arg('--redis', process.env.REDIS_URL || 'redis://127.0.0.1:6379');

function connection() {
  const u = new URL(redisUrl);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number((u.pathname || '/0').slice(1) || 0),
    username: u.username || undefined,
    password: u.password || undefined,
    maxRetriesPerRequest: null,
  };
}

const nowNs = () => process.hrtime.bigint() + epochOffsetNs;
// hrtime is monotonic; anchor it to the wall clock once so both sides compare unix times.
const epochOffsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
const emit = (metric, value, unit) =>
  console.log(JSON.stringify({ side: 'bullmq', metric, value, unit }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ child worker

async function worker() {
  const prefix = arg('--prefix', 'bench');
  const mode = arg('--mode', 'noop');
  const concurrency = Number(arg('--concurrency', '50'));
  const lockMs = arg('--lock-ms', null);
  let done = 0;
  let lastDoneNs = 0n;
  const latencies = [];
  const options = { connection: connection(), prefix, concurrency };
  if (lockMs) {
    options.lockDuration = Number(lockMs);
    options.stalledInterval = Number(lockMs);
  }
  const w = new Worker(
    QUEUE,
    async (job) => {
      if (mode === 'latency') latencies.push(Number(nowNs() - BigInt(job.data.pushed_ns)));
      if (mode === 'hang') {
        console.log('started');
        await sleep(3_600_000);
      }
      done += 1;
      lastDoneNs = nowNs();
    },
    options,
  );
  await w.waitUntilReady();
  console.log('ready');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    await w.close();
    console.log(JSON.stringify({ done, last_done_ns: Number(lastDoneNs), latencies_ns: latencies }));
    process.exit(0);
  });
}

// ------------------------------------------------------------------ orchestration

class Child {
  constructor(prefix, mode, concurrency, extra = []) {
    const self = fileURLToPath(import.meta.url);
    this.proc = spawn(
      process.execPath,
      [self, 'worker', '--redis', redisUrl, '--prefix', prefix, '--mode', mode,
        '--concurrency', String(concurrency), ...extra],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    this.lines = [];
    this.waiters = [];
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => !w());
    });
  }
  waitFor(prefix, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child never said ${prefix}`)), timeoutMs);
      const check = () => {
        const i = this.lines.findIndex((l) => l.startsWith(prefix));
        if (i < 0) return false;
        const [line] = this.lines.splice(i, 1);
        clearTimeout(timer);
        resolve(line);
        return true;
      };
      if (!check()) this.waiters.push(check);
    });
  }
  async stop() {
    this.proc.stdin.end();
    return JSON.parse(await this.waitFor('{', 30_000));
  }
  kill() {
    this.proc.kill('SIGKILL');
  }
}

const newPrefix = () => `bench-${Date.now() % 1_000_000_007}-${Math.floor(Math.random() * 1e6)}`;

async function pushMany(queue, n, inFlight) {
  const started = process.hrtime.bigint();
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next += 1;
      await queue.add('noop', { pushed_ns: Number(nowNs()) }, { removeOnComplete: true, removeOnFail: true });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function drained(queue, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'paused');
    if (Object.values(c).every((v) => v === 0)) return true;
    await sleep(20);
  }
  return false;
}

const percentile = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))] : NaN;

async function all() {
  const jobs = Number(arg('--jobs', '20000'));
  const concurrency = Number(arg('--concurrency', '50'));

  {
    const queue = new Queue(QUEUE, { connection: connection(), prefix: newPrefix() });
    const n = Math.floor(jobs / 4);
    emit('enqueue_sequential', n / (await pushMany(queue, n, 1)), 'jobs/s');
    await queue.obliterate({ force: true });
    emit('enqueue_100_in_flight', jobs / (await pushMany(queue, jobs, 100)), 'jobs/s');
    await queue.obliterate({ force: true });
    await queue.close();
  }

  for (const procs of [1, 2]) {
    const prefix = newPrefix();
    const queue = new Queue(QUEUE, { connection: connection(), prefix });
    const workers = Array.from({ length: procs }, () => new Child(prefix, 'noop', concurrency));
    await Promise.all(workers.map((w) => w.waitFor('ready')));
    const startNs = nowNs();
    await pushMany(queue, jobs, 100);
    const ok = await drained(queue, 300_000);
    const reports = await Promise.all(workers.map((w) => w.stop()));
    const done = reports.reduce((a, r) => a + r.done, 0);
    const end = Math.max(...reports.map((r) => r.last_done_ns));
    if (!ok || done < jobs) console.error(`bullmq: only ${done} of ${jobs} jobs done`);
    emit(`throughput_${procs}_process`, done / ((end - Number(startNs)) / 1e9), 'jobs/s');
    await queue.obliterate({ force: true });
    await queue.close();
  }

  {
    const prefix = newPrefix();
    const queue = new Queue(QUEUE, { connection: connection(), prefix });
    const w = new Child(prefix, 'latency', concurrency);
    await w.waitFor('ready');
    await sleep(300);
    for (let i = 0; i < 300; i += 1) {
      await queue.add('noop', { pushed_ns: Number(nowNs()) }, { removeOnComplete: true, removeOnFail: true });
      await sleep(10);
    }
    await drained(queue, 30_000);
    const lat = (await w.stop()).latencies_ns.sort((a, b) => a - b);
    emit('pickup_p50', percentile(lat, 50) / 1e6, 'ms');
    emit('pickup_p99', percentile(lat, 99) / 1e6, 'ms');
    await queue.obliterate({ force: true });
    await queue.close();
  }

  // Reclaim after SIGKILL, with BullMQ's defaults (lock 30 s, stalled check every 30 s) and
  // with both set to 10 s like our claim idle time.
  for (const [metric, extra] of [['reclaim_after_kill', []], ['reclaim_after_kill_lock_10s', ['--lock-ms', '10000']]]) {
    const prefix = newPrefix();
    const queue = new Queue(QUEUE, { connection: connection(), prefix });
    const victim = new Child(prefix, 'hang', 10, extra);
    await victim.waitFor('ready');
    for (let i = 0; i < 10; i += 1) {
      await queue.add('noop', { pushed_ns: Number(nowNs()) }, { removeOnComplete: true, removeOnFail: true });
    }
    for (let i = 0; i < 10; i += 1) await victim.waitFor('started');
    const killedNs = nowNs();
    victim.kill();
    const rescuer = new Child(prefix, 'noop', 10, extra);
    await rescuer.waitFor('ready');
    const ok = await drained(queue, 180_000);
    const report = await rescuer.stop();
    if (!ok || report.done < 10) console.error(`bullmq: only ${report.done} of 10 jobs reclaimed`);
    emit(metric, (report.last_done_ns - Number(killedNs)) / 1e9, 's');
    await queue.obliterate({ force: true });
    await queue.close();
  }
  process.exit(0);
}

if (args[0] === 'worker') await worker();
else if (args[0] === 'all') await all();
else {
  console.error('usage: node bullmq.mjs all|worker ...');
  process.exit(2);
}
