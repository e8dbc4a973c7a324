// `consensus status --watch` and `task status --watch`: a line per event as it happens
// (elections, leader changes, task progress). A watch begins with the most recent elections, so
// one started just after an election still shows it. On a terminal the lines are for people;
// piped, each line is one JSON object (the spec's {"event": "leader_election", ...}).

import type { CommandContext } from './context.js';
import { printResult } from './output.js';
import { runTool, withTools } from './tool-command.js';
import { invocationOf } from './invocation.js';
import type { ToolClient } from './tool-client.js';

/** Elections shown when a watch starts. */
const RECENT_ELECTIONS = 3;
const POLL_MS = 100;
/** How long a new leader's line waits for its election record. */
const RECORD_GRACE_MS = 1_000;
/** `--watch` alone when piped (a script must end); on a terminal it runs until Ctrl-C. */
const PIPED_WATCH_MS = 5_000;

type Row = Record<string, unknown>;

/** Prints events as lines: JSON when piped, text on a terminal. */
class EventPrinter {
  constructor(private readonly json: boolean) {}

  election(e: Row, recent: boolean): void {
    const ev = {
      event: 'leader_election',
      old_leader: e.old_leader ?? null,
      new_leader: e.new_leader,
      term: e.term,
      election_duration_ms: e.election_duration_ms,
      detection_ms: e.detection_ms ?? null,
      voted_by: e.voted_by,
      cause: e.cause,
      tasks_recovered: e.tasks_recovered,
      at: typeof e.at === 'number' ? new Date(e.at).toISOString() : (e.at ?? null),
      ...(recent ? { recent: true } : {}),
    };
    if (this.json) return this.line(ev);
    const voted = Array.isArray(e.voted_by) ? e.voted_by.join(',') : '';
    this.text(
      `${recent ? '(recent) ' : ''}term ${String(e.term)}: ${String(e.old_leader ?? '-')} -> ${String(e.new_leader)}  voted_by ${voted}  election ${String(e.election_duration_ms)} ms` +
        `${e.detection_ms != null ? `, detection ${String(e.detection_ms)} ms` : ''}  cause: ${String(e.cause)}  tasks_recovered: ${String(e.tasks_recovered)}`,
      ev.at as string | null,
    );
  }

  leader(l: Row, previous: Row | null): void {
    const ev = { event: previous ? 'leader_change' : 'leader', leader_id: l.leader_id ?? null, term: l.term ?? null, heartbeat_status: l.heartbeat_status, ...(previous ? { previous_leader: previous.leader_id ?? null } : {}) };
    if (this.json) return this.line(ev);
    this.text(`${previous ? 'leader change' : 'leader'}: ${String(l.leader_id ?? 'none')} (term ${String(l.term ?? '-')}, heartbeat ${String(l.heartbeat_status)})`);
  }

  progress(o: Row): void {
    const ev = { event: 'progress', orchestration_id: o.orchestration_id, completed: o.completed, failed: o.failed, total_tasks: o.total_tasks, progress: o.progress, status: o.status };
    if (this.json) return this.line(ev);
    this.text(`${String(o.orchestration_id)}: ${String(o.completed)}/${String(o.total_tasks)} completed, ${String(o.failed)} failed (${String(o.progress)}%) ${String(o.status)}`);
  }

  private line(o: object): void {
    process.stdout.write(`${JSON.stringify(o)}\n`);
  }

  private text(s: string, at?: string | null): void {
    const t = (at ? new Date(at) : new Date()).toISOString().slice(11, 23);
    process.stdout.write(`${t}  ${s}\n`);
  }
}

/** New election records since the last poll, and leader changes. */
class ElectionWatch {
  private lastTerm = -1;
  private leader: Row | null = null;
  private heldSince: number | null = null;

  constructor(
    private readonly tools: ToolClient,
    private readonly swarm: Record<string, unknown>,
    private readonly out: EventPrinter,
  ) {}

  /** The most recent elections first (oldest to newest), then the current leader. */
  async start(): Promise<boolean> {
    const h = await this.tools.call('consensus_election_history', { ...this.swarm, limit: RECENT_ELECTIONS });
    if (!h.ok) {
      process.stderr.write(`${h.text}\n`);
      return false;
    }
    const recs = [...((h.data.elections as Row[] | undefined) ?? [])].reverse();
    for (const e of recs) this.out.election(e, true);
    this.lastTerm = Math.max(-1, ...recs.map((e) => e.term as number));
    await this.poll(true);
    return true;
  }

  async poll(first = false): Promise<void> {
    const h = await this.tools.call('consensus_election_history', { ...this.swarm, limit: 10 });
    if (h.ok) {
      const fresh = ((h.data.elections as Row[] | undefined) ?? []).filter((e) => (e.term as number) > this.lastTerm).reverse();
      for (const e of fresh) {
        this.out.election(e, false);
        this.lastTerm = e.term as number;
      }
    }
    const l = await this.tools.call('consensus_leader', { ...this.swarm, wait_ms: 0 });
    if (!l.ok) return;
    const changed = !this.leader || l.data.leader_id !== this.leader.leader_id || l.data.term !== this.leader.term || l.data.heartbeat_status !== this.leader.heartbeat_status;
    // A new leader's election record lands in the log just after it wins: print the record
    // first (it says more), the leader line once the record is in or a moment has passed.
    const term = typeof l.data.term === 'number' ? l.data.term : -1;
    if (changed && term > this.lastTerm && l.data.leader_id) {
      this.heldSince ??= performance.now();
      if (performance.now() - this.heldSince < RECORD_GRACE_MS) return;
    }
    this.heldSince = null;
    if (changed) {
      this.out.leader(l.data, first || !this.leader ? null : this.leader);
      this.leader = l.data;
    }
  }
}

function swarmOf(ctx: CommandContext): Record<string, unknown> {
  return typeof ctx.flags.swarm === 'string' ? { swarm: ctx.flags.swarm } : {};
}

/** Ends a watch on Ctrl-C (the loop closes the connection cleanly). */
function interruptible(): { stopped: () => boolean; off: () => void } {
  let stop = false;
  const on = () => {
    stop = true;
  };
  process.on('SIGINT', on);
  return { stopped: () => stop, off: () => process.off('SIGINT', on) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runConsensusStatus(ctx: CommandContext): Promise<number> {
  if (ctx.flags.watch === undefined) return runTool(ctx);
  const given = ctx.flags.watch === '' || ctx.flags.watch === true ? undefined : Number(ctx.flags.watch);
  const forMs = given ?? (process.stdout.isTTY ? 0 : PIPED_WATCH_MS);
  const out = new EventPrinter(ctx.json);
  return withTools(ctx, async (tools) => {
    const w = new ElectionWatch(tools, swarmOf(ctx), out);
    if (!(await w.start())) return 1;
    const end = forMs > 0 ? performance.now() + forMs : Infinity;
    const sig = interruptible();
    try {
      while (!sig.stopped() && performance.now() < end) {
        await sleep(Math.min(POLL_MS, Math.max(0, end - performance.now())));
        await w.poll();
      }
    } finally {
      sig.off();
    }
    return 0;
  });
}

export async function runTaskStatus(ctx: CommandContext): Promise<number> {
  if (ctx.flags.watch === undefined) return runTool(ctx);
  const inv = invocationOf(ctx);
  const end = ctx.flags.watch === '' || ctx.flags.watch === true ? Infinity : performance.now() + Number(ctx.flags.watch);
  const out = new EventPrinter(ctx.json);
  return withTools(ctx, async (tools) => {
    const w = new ElectionWatch(tools, swarmOf(ctx), out);
    if (!(await w.start())) return 1;
    const seen = new Map<string, string>();
    const sig = interruptible();
    try {
      for (;;) {
        const r = await tools.call('task_status', inv.args);
        if (!r.ok) {
          process.stderr.write(`${r.text}\n`);
          return 1;
        }
        const list = (r.data.orchestrations as Row[] | undefined) ?? [r.data];
        for (const o of list) {
          const key = `${String(o.completed)}/${String(o.failed)}/${String(o.status)}`;
          if (seen.get(o.orchestration_id as string) === key) continue;
          seen.set(o.orchestration_id as string, key);
          out.progress(o);
        }
        if (list.every((o) => o.status === 'finished') || sig.stopped() || performance.now() >= end) {
          // Piped, the final status is one more line of JSON (every line parses alone).
          if (ctx.json) process.stdout.write(`${JSON.stringify(r.data)}\n`);
          else printResult(r.data, false, ctx.spec.tables);
          return 0;
        }
        await sleep(250);
        await w.poll();
      }
    } finally {
      sig.off();
    }
  });
}
