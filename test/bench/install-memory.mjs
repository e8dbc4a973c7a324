// Offline memory of a v5 snapshot install (issue 12 item 5): a machine with `tasks` completed
// noop tasks serializes its state for a follower, the parts stream through SnapshotSend and
// SnapshotReceive in 1 MiB frames (as the embedded swarm's network sends them), the receiving
// machine prepares each part as it completes, checks and restores. Prints the live memory
// (after forced GCs) at each step, and the peaks seen during the transfer without forcing GC.
// Compare builds by passing each one's dist root. Measured 2026-12-01 22:47 (1,000,000 tasks,
// an 18.0 M-character task part), the build before the install's copies were cut (aa57475) and
// after: heap committed at its peak during the transfer 106.5 and 54.4 MiB, RSS 183.7 and
// 155.8 MiB; live heap once the parts had arrived 55.9 MiB (the parts and their parsed rows)
// and 21.7 MiB plus the task part, 17.2 MiB, as an external string outside the heap.
// Usage: node --expose-gc test/bench/install-memory.mjs [tasks] [dist root]
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [tasksArg, distArg] = process.argv.slice(2);
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
const dist = path.resolve(distArg ?? path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'dist'));
const load = (p) => import(pathToFileURL(path.join(dist, p)).href);
const { CoordinationMachine } = await load('src/machine/coordination-machine.js');
const { SnapshotSend, SnapshotReceive } = await load('src/transport/snapshot-stream.js');
const { newMessage } = await load('src/raft/types.js');

const N = Number(tasksArg ?? 1_000_000);
const mib = (b) => Math.round((b / 2 ** 20) * 10) / 10;
const live = () => {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  return { heap_mib: mib(m.heapUsed), array_buffers_mib: mib(m.arrayBuffers), external_strings_mib: mib(m.external - m.arrayBuffers), rss_mib: mib(m.rss) };
};
const log = (step, extra = {}) => console.log(JSON.stringify({ step, ...live(), ...extra }));

const leader = new CoordinationMachine();
let index = 0;
const apply = (op) => leader.apply({ index: ++index, term: 1, type: 'normal', data: JSON.stringify({ op, now: 1000 + index }) });
apply({ t: 'orch.create', task: 'work', count: N, priority: 'medium', strategy: 'parallel', max_agents: 5, executor: { kind: 'noop' }, payload: null, idempotency_key: null });
for (let s = 1; s <= N; s += 2000) {
  const seqs = Array.from({ length: Math.min(2000, N - s + 1) }, (_, k) => s + k);
  const agent = `agent-${Math.floor(s / 2000) % 5}`;
  apply({ t: 'task.assign', term: 1, lease_ms: 60_000, groups: [{ orch: 'orch-1', agent, seqs, from: seqs.map(() => 0) }] });
  apply({ t: 'task.complete', groups: [{ orch: 'orch-1', agent, seqs, epochs: seqs.map(() => 1), ok: true }] });
}
const recv = new CoordinationMachine();
log('two machines');
const data = leader.snapshotData();
log('leader serialized', { part_chars: typeof data === 'string' ? [data.length] : data.map((p) => p.length) });

const msg = newMessage({ type: 'MsgSnap', from: 'a', to: 'b', term: 2, snapshot: { metadata: { index, term: 1, confState: { voters: ['a', 'b'], learners: [] } }, data } });
const send = new SnapshotSend(msg, 1 << 20);
const turns = [];
send.prepare(() => {}, (fn) => void turns.push(fn));
while (turns.length > 0) turns.shift()();
const peak = { heap_committed_mib: 0, array_buffers_mib: 0, rss_mib: 0 };
const peek = () => {
  const m = process.memoryUsage();
  peak.heap_committed_mib = Math.max(peak.heap_committed_mib, mib(m.heapTotal));
  peak.array_buffers_mib = Math.max(peak.array_buffers_mib, mib(m.arrayBuffers));
  peak.rss_mib = Math.max(peak.rss_mib, mib(m.rss));
};
const rx = new SnapshotReceive(Number.MAX_SAFE_INTEGER, { part: (p, i) => (recv.prepareSnapshotPart(p, i), peek()), drop: () => {} });
let got;
while (!got) {
  const pieces = send.nextPart();
  const r = rx.push(pieces.length === 1 ? pieces[0] : Buffer.concat(pieces));
  peek();
  if (r.ack) send.onAck(r.ack);
  got = r.message;
}
console.log(JSON.stringify({ step: 'transfer peaks (no forced GC)', ...peak }));
log('transferred and prepared');
const why = recv.checkSnapshot(got.snapshot.data);
log('checked', { refused: why });
recv.restore(got.snapshot.data);
log('restored', { state_hash_equal: recv.stateHash() === leader.stateHash() });
