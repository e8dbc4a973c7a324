// Named mutations for `npm run mutate`: each breaks one guarantee on purpose, and names the
// test files that should notice. A mutation that survives (its tests still pass) is a gap in
// the tests, or an equivalent mutant listed in test/mutate/EQUIVALENT.md.
//
// Each edit's `find` must occur exactly once in its file (test/mutate/mutations.test.ts checks
// this at HEAD, so the list cannot rot silently when the code moves).

export interface Edit {
  find: string;
  replace: string;
}

export interface Mutation {
  id: string;
  /** Repository-relative path of the mutated file. */
  file: string;
  edits: Edit[];
  /** The guarantee this mutation breaks. */
  breaks: string;
  /** Repository-relative test files that defend the guarantee. */
  tests: string[];
}

const SIM = 'test/sim.test.ts';
const LIN = 'test/service/memory-linearizability.test.ts';
const STALE_READ = 'test/service/stale-leader-read.test.ts';
const STORAGE = 'test/storage.test.ts';
const ASYNC_PERSIST = 'test/host-async-persist.test.ts';
const MACHINE = 'test/machine/coordination-machine.test.ts';
const ORCH = 'test/machine/replicated-orchestration.test.ts';
const WORKER = 'test/service/worker.test.ts';
const TASK_RECOVERY = 'test/service/task-recovery.test.ts';
const DURABILITY = 'test/storage/durability.test.ts';
const REGISTRY_DURABILITY = 'test/storage/registry-durability.test.ts';
const SESSIONS = 'test/machine/sessions.test.ts';
const PROPOSER_SESSIONS = 'test/service/proposer-sessions.test.ts';
const LOG_CLOCK = 'test/machine/log-clock.test.ts';
const MEMBER_STORAGE = 'test/service/member-storage.test.ts';
const MEMBER_IDENTITY = 'test/service/member-identity.test.ts';
const CONFIG_VALIDATION = 'test/machine/config-validation.test.ts';
const DISK_FULL = 'test/service/disk-full.test.ts';
/** Every test file aimed at storage durability (the storage-* mutations run all of them). */
const STORAGE_ALL = [STORAGE, DURABILITY, REGISTRY_DURABILITY];
const sc = (name: string): string => `test/scenarios/${name}.test.ts`;

const one = (find: string, replace: string): Edit[] => [{ find, replace }];

export const MUTATIONS: Mutation[] = [
  // ---- issue 14's table --------------------------------------------------------------------
  {
    id: 'storage-inline-synchronous-off',
    file: 'src/storage/sqlite-storage.ts',
    edits: [
      { find: "db.pragma(`synchronous = ${walSync ? 'NORMAL' : durability.toUpperCase()}`);", replace: "db.pragma(`synchronous = ${walSync ? 'NORMAL' : 'OFF'}`);" },
      { find: "} finally {\n        this.db.pragma('synchronous = FULL');", replace: "} finally {\n        this.db.pragma('synchronous = OFF');" },
    ],
    breaks: 'durability: inline mode fsyncs every commit that must survive power loss (synchronous=FULL)',
    tests: STORAGE_ALL,
  },
  {
    id: 'storage-threadpool-skips-fdatasync',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('this.sfs.fdatasync(fd, (err) => {', 'setImmediate((err: NodeJS.ErrnoException | null = null) => {'),
    breaks: 'durability: saveAsync() calls back only after the WAL is fdatasynced on the threadpool',
    tests: [...STORAGE_ALL, ASYNC_PERSIST],
  },
  {
    id: 'storage-fsync-main-file-not-wal',
    file: 'src/storage/sqlite-storage.ts',
    edits: one("this.sfs.openSync(`${this.file}-wal`, 'r+')", "this.sfs.openSync(this.file, 'r+')"),
    breaks: 'durability: the threadpool fsync must flush the -wal file, where commits live',
    tests: [...STORAGE_ALL, ASYNC_PERSIST],
  },
  {
    id: 'service-read-skips-readindex',
    file: 'src/swarm/proposer.ts',
    edits: one('await leader.readIndex(Math.min(remaining, 2_000));', ''),
    breaks: 'linearizable reads: a read is served only after a ReadIndex round confirms leadership',
    tests: [STALE_READ, LIN],
  },
  {
    id: 'scheduler-dead-agent-waits-for-lease',
    file: 'src/swarm/scheduler.ts',
    edits: one('if (internal && live.has(assignee) && leaseUntil > now) {', 'if (internal && leaseUntil > now) {'),
    breaks: "recovery: a dead agent's tasks are reassigned when its heartbeats stop, not after the 30 s lease",
    tests: [WORKER, TASK_RECOVERY, ORCH],
  },
  {
    id: 'raft-stale-term-processed',
    file: 'src/raft/raft.ts',
    edits: one('} else if (m.term < this.term && m.term !== 0) {', '} else if (false && m.term < this.term && m.term !== 0) {'),
    breaks: 'election safety: messages from an older term are dropped, not acted on',
    tests: [sc('election'), sc('prevote-checkquorum'), sc('stale-term'), SIM],
  },
  {
    id: 'worker-continues-after-member-stops',
    file: 'src/swarm/worker.ts',
    edits: [
      {
        find: 'if (!this.host.isRunning(this.agent)) {\n      this.reset();\n      return;\n    }\n    const m = this.host.machineOf(this.agent);',
        replace: 'const m = this.host.machineOf(this.agent);',
      },
      {
        find: 'if (!this.host.isRunning(this.agent)) {\n      this.reset();\n      return;\n    }\n    this.flushing = true;',
        replace: 'this.flushing = true;',
      },
    ],
    breaks: 'a worker stops with its member: a crashed agent executes and completes nothing',
    tests: [WORKER],
  },
  {
    id: 'raft-figure8-rule-removed',
    file: 'src/raft/raft.ts',
    edits: one('if (mci > this.log.committed && this.log.term(mci) === this.term) {', 'if (mci > this.log.committed) {'),
    breaks: 'commit safety (Figure 8): a leader commits by counting replicas only entries of its own term',
    tests: [sc('figure8'), sc('figure8-commit-rule'), SIM],
  },

  // ---- raft core ---------------------------------------------------------------------------
  {
    id: 'raft-vote-skips-log-up-to-date-check',
    file: 'src/raft/raft.ts',
    edits: one('if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {', 'if (canVote) {'),
    breaks: 'leader completeness: a vote goes only to a candidate whose log is at least as up to date',
    tests: [sc('election'), SIM],
  },
  {
    id: 'raft-votes-twice-in-a-term',
    file: 'src/raft/raft.ts',
    edits: one(
      'const canVote = this.vote === m.from || (this.vote === null && this.lead === null) || (pre && m.term > this.term);',
      'const canVote = true;',
    ),
    breaks: 'election safety: one vote per term',
    tests: [sc('election'), SIM],
  },
  {
    id: 'raft-vote-not-restored-on-restart',
    file: 'src/raft/raft.ts',
    edits: one('this.vote = hs.vote;', 'this.vote = null;'),
    breaks: 'election safety: a vote survives a restart (no second vote in the same term)',
    tests: [sc('persistence'), SIM],
  },
  {
    id: 'raft-quorum-off-by-one',
    file: 'src/raft/quorum.ts',
    edits: one('return Math.floor(n / 2) + 1;', 'return Math.floor(n / 2);'),
    breaks: 'a quorum is a strict majority of voters',
    tests: [sc('election'), sc('replication'), SIM],
  },
  {
    id: 'raft-commit-index-moves-backwards',
    file: 'src/raft/log.ts',
    edits: one('if (index <= this.committed) return;', 'if (index === this.committed) return;'),
    breaks: 'the commit index never decreases',
    tests: [sc('replication'), SIM],
  },
  {
    id: 'raft-append-skips-log-matching',
    file: 'src/raft/log.ts',
    edits: one('if (!this.matchTerm(prevIndex, prevTerm)) return null;', ''),
    breaks: 'log matching: entries are appended only after the entry before them matches the leader',
    tests: [sc('replication'), SIM],
  },
  {
    id: 'raft-snapshot-install-keeps-old-entries',
    file: 'src/raft/log.ts',
    edits: one('this.snapshotTerm = s.metadata.term;\n    this.entries = [];', 'this.snapshotTerm = s.metadata.term;'),
    breaks: 'an installed snapshot replaces the log it covers',
    tests: [sc('snapshot-readindex'), SIM],
  },
  {
    id: 'raft-heartbeat-commit-beyond-match',
    file: 'src/raft/raft.ts',
    edits: one('commit: Math.min(pr.match, this.log.committed), context: quiet', 'commit: this.log.committed, context: quiet'),
    breaks: 'a follower is never told to commit beyond what the leader knows it holds',
    tests: [sc('replication'), SIM],
  },
  {
    id: 'raft-readindex-before-term-commit',
    file: 'src/raft/raft.ts',
    edits: one(
      'if (this.log.term(this.log.committed) !== this.term) {\n      // Until an entry of this term commits',
      'if (false) {\n      // Until an entry of this term commits',
    ),
    breaks: "linearizable reads: a new leader answers ReadIndex only once an entry of its term committed",
    tests: [sc('snapshot-readindex'), SIM],
  },
  {
    id: 'raft-readindex-without-quorum-ack',
    file: 'src/raft/read-only.ts',
    edits: one('if (votes < majority(voters.length)) return [];', 'if (votes < 1) return [];'),
    breaks: 'linearizable reads: a ReadIndex is released only after a quorum acknowledged the heartbeat',
    tests: [sc('snapshot-readindex'), STALE_READ, SIM],
  },
  {
    id: 'raft-check-quorum-never-steps-down',
    file: 'src/raft/raft.ts',
    edits: one('if (!this.quorumRecentlyHeard()) {', 'if (false) {'),
    breaks: 'check-quorum: a leader that cannot hear a majority steps down',
    tests: [sc('prevote-checkquorum')],
  },

  // ---- storage -----------------------------------------------------------------------------
  {
    id: 'storage-open-skips-recovery-sync',
    file: 'src/storage/sqlite-storage.ts',
    edits: one("if (durability === 'full') storage.recoverySync();", ''),
    breaks: "durability: open() fsyncs the -wal, the database file and the directory before returning state (a killed process's queued fdatasyncs may never have run)",
    tests: STORAGE_ALL,
  },
  {
    id: 'storage-threadpool-save-skips-fdatasync',
    file: 'src/storage/sqlite-storage.ts',
    // save()'s fdatasync only (setIdentity() has its own): the one inside the try.
    edits: one('try {\n        this.sfs.fdatasyncSync(this.walFd());', 'try {\n        void this.walFd();'),
    breaks: 'durability: save() in threadpool mode fdatasyncs the WAL before returning',
    tests: [...STORAGE_ALL, ASYNC_PERSIST],
  },
  {
    id: 'storage-vote-not-persisted',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('st.putHard.run(h.term, h.vote, h.commit);', 'st.putHard.run(h.term, null, h.commit);'),
    breaks: 'election safety: the vote is durable',
    tests: [...STORAGE_ALL, sc('persistence')],
  },
  {
    id: 'storage-conflicting-suffix-kept',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('st.truncateFrom.run(first.index); // conflicting suffix, if any', '// conflicting suffix kept'),
    breaks: 'a batch replacing a conflicting suffix removes the old entries after it',
    tests: [...STORAGE_ALL, sc('persistence')],
  },
  {
    id: 'storage-vote-change-not-fsynced',
    file: 'src/storage/sqlite-storage.ts',
    edits: one(
      '(hs !== null && (hs.term !== this.durableTerm || hs.vote !== this.durableVote));',
      '(hs !== null && hs.term !== this.durableTerm);',
    ),
    breaks: 'durability: a vote cast within an already durable term is fsynced (MustSync)',
    tests: STORAGE_ALL,
  },

  // ---- host --------------------------------------------------------------------------------
  {
    id: 'host-read-released-before-apply',
    file: 'src/host/node-host.ts',
    edits: one('if (r.index !== null && r.index <= applied) {', 'if (r.index !== null) {'),
    breaks: 'linearizable reads: a read waits until the member applied up to its read index',
    tests: [sc('snapshot-readindex'), LIN, SIM],
  },
  {
    id: 'host-deposed-leader-keeps-reads',
    file: 'src/host/node-host.ts',
    edits: one("r.reject(new ProposalError('not_leader', `${this.id} lost leadership before confirming the read; retry`, leader));", 'void r;'),
    breaks: 'a deposed leader fails its unconfirmed reads at once instead of letting them time out',
    tests: [sc('snapshot-readindex'), STALE_READ],
  },
  {
    id: 'inproc-isolation-ignored',
    file: 'src/host/inproc-network.ts',
    edits: one('if (this.isolated.has(a) || this.isolated.has(b)) return false;', ''),
    breaks: 'fault injection: an isolated member exchanges no messages',
    tests: ['test/inproc-network.test.ts', STALE_READ],
  },

  {
    id: 'handshake-ignores-swarm',
    file: 'src/transport/conn.ts',
    edits: one('    if (swarm === this.o.swarm) return null;', '    return null;'),
    breaks: 'two swarms sharing a secret and member ids never exchange messages (the handshake names the swarm)',
    tests: ['test/transport/auth.test.ts'],
  },

  // ---- replicated state machine ------------------------------------------------------------
  {
    id: 'memory-cas-ignores-if-version',
    file: 'src/machine/memory-store.ts',
    edits: one('if (op.if_version !== null && (prev?.version ?? 0) !== op.if_version) {', 'if (false) {'),
    breaks: 'memory_store with if_version is a compare-and-set',
    tests: [MACHINE, LIN],
  },
  {
    id: 'memory-delete-ignores-if-version',
    file: 'src/machine/memory-store.ts',
    edits: one('if (op.if_version !== null && prev.version !== op.if_version) {', 'if (false) {'),
    breaks: 'memory_delete with if_version deletes only that version',
    tests: [MACHINE, LIN],
  },
  {
    id: 'memory-ttl-never-expires',
    file: 'src/machine/memory-store.ts',
    edits: one('if (!r || (r.expires_at !== null && r.expires_at <= now)) return undefined;', 'if (!r) return undefined;'),
    breaks: 'a key stored with ttl_s is gone once its TTL passed',
    tests: [MACHINE],
  },
  {
    id: 'memory-on-demand-forgets-deleted',
    file: 'src/machine/memory-store.ts',
    edits: one('        this.gone.add(id);', ''),
    breaks: 'a record deleted after a restart from rows is not read back from its still-stored row',
    tests: ['test/machine/memory-on-demand.test.ts', SIM],
  },
  {
    id: 'memory-on-demand-reads-this-lifes-rows',
    file: 'src/machine/memory-store.ts',
    edits: one('if (ord > this.baseLastOrd || storedId(ord, json) !== id) continue;', 'if (storedId(ord, json) !== id) continue;'),
    breaks: 'a record created and deleted since a restart from rows stays deleted though its row is still stored',
    tests: ['test/machine/memory-on-demand.test.ts'],
  },
  {
    id: 'memory-on-demand-miscounts',
    file: 'src/machine/memory-store.ts',
    edits: one('      if (this.base !== null) this.fresh++;', ''),
    breaks: 'the record count of a machine restarted from rows (it paces checkpoints) counts records created since',
    tests: ['test/machine/memory-on-demand.test.ts'],
  },
  {
    id: 'task-completion-at-stale-epoch',
    file: 'src/machine/task-table.ts',
    edits: one('if (status !== STATUS_CODE.assigned || t.epoch.get(i) !== epoch || t.assignee.get(i) !== agent) {', 'if (status !== STATUS_CODE.assigned || t.assignee.get(i) !== agent) {'),
    breaks: 'exactly-once: a completion carrying an old epoch (fencing token) is refused',
    tests: [MACHINE, ORCH],
  },
  {
    id: 'task-assign-ignores-from-epoch',
    file: 'src/machine/task-table.ts',
    edits: one('if (!t || (status !== STATUS_CODE.pending && status !== STATUS_CODE.assigned) || t.epoch.get(i) !== fromEpoch) {', 'if (!t || (status !== STATUS_CODE.pending && status !== STATUS_CODE.assigned)) {'),
    breaks: 'an assignment decided on an old view of a task (its epoch moved) is refused',
    tests: [MACHINE, ORCH],
  },
  {
    id: 'session-dedup-disabled',
    file: 'src/machine/coordination-machine.ts',
    edits: one('const seen = session?.results.get(cmd.seq);', 'const seen = undefined as OpResult | undefined;'),
    breaks: 'exactly-once: a retried command (same client, seq) is applied once and answered from the session',
    tests: [MACHINE, ORCH, SESSIONS, PROPOSER_SESSIONS, LOG_CLOCK],
  },
  {
    id: 'machine-log-clock-moves-backwards',
    file: 'src/machine/coordination-machine.ts',
    edits: one("if (typeof now === 'number' && now > this.clock) this.clock = now;", "if (typeof now === 'number') this.clock = now;"),
    breaks: 'log time never goes backwards (an expired key cannot come back)',
    tests: [MACHINE, LOG_CLOCK],
  },

  {
    id: 'session-expiry-never-refuses',
    file: 'src/machine/coordination-machine.ts',
    edits: one('if (this.clock - s.last_active > s.timeout_ms) return undefined;\n    this.bump(client, s, ack);', 'this.bump(client, s, ack);'),
    breaks: 'a registered session idle past its timeout is refused (session_expired) when it is looked up, even before the sweep reaches it',
    tests: [SESSIONS, PROPOSER_SESSIONS, MACHINE],
  },
  {
    id: 'config-not-validated-at-apply',
    file: 'src/machine/coordination-machine.ts',
    edits: one("if (bad) return { ok: false, code: 'invalid',", "if (false && bad) return { ok: false, code: 'invalid',"),
    breaks: 'a committed config entry outside the bounds is a recorded no-op, never a config members cannot start with',
    tests: [CONFIG_VALIDATION, MACHINE],
  },

  // ---- member identity, disk space ----------------------------------------------------------
  {
    id: 'member-identity-incarnation-ignored',
    file: 'src/swarm/member-storage.ts',
    edits: one(
      'if (found.member !== member || (o.incarnation !== undefined && found.incarnation !== o.incarnation)) {',
      'if (found.member !== member) {',
    ),
    breaks: "a member starts only on the database of its current incarnation (a re-spawned member never votes with an old member's file)",
    tests: [MEMBER_STORAGE, MEMBER_IDENTITY],
  },
  {
    id: 'host-checkpoint-take-survives-install',
    file: 'src/host/node-host.ts',
    edits: one('if (this.snapshotsInstalled !== installs || this.raft.log.applied !== at || this.raft.log.snapshotIndex > at) {', 'if (false as boolean) {'),
    breaks: 'a checkpoint whose rows are taken over several turns is dropped when a snapshot is installed between its steps (rows of two states never mix)',
    tests: ['test/host/checkpoint-steps.test.ts'],
  },
  {
    id: 'host-checkpoint-take-survives-stored-snapshot',
    file: 'src/host/node-host.ts',
    edits: one(' || this.raft.log.snapshotIndex > at) {', ') {'),
    breaks: 'a stepped checkpoint take is dropped when a snapshot past its index reached the core between steps, stored but not applied yet (simulator seed 5763)',
    // The seed's trajectory no longer reaches this (it survived there): the host test builds it.
    tests: ['test/host/checkpoint-steps.test.ts', 'test/sim-regressions.test.ts'],
  },
  {
    id: 'host-checkpoint-steps-run-at-once',
    file: 'src/host/node-host.ts',
    edits: one('    else this.takeCheckpointLater(steps, json, ms, began);', '    else {\n      let x = r;\n      while (!x.done) x = steps.next();\n      this.storeCheckpoint(x.value, json, { turns: 1, ms, maxStepMs: ms });\n    }'),
    breaks: 'a large checkpoint (the whole state after an install) is taken a slice per turn, not on one turn',
    tests: ['test/host/checkpoint-steps.test.ts'],
  },
  {
    id: 'host-disk-reserve-ignored',
    file: 'src/host/node-host.ts',
    edits: one('if (free === null || free >= reserve) return null;', 'return null;'),
    breaks: 'writes are refused (disk_full) while free space is below the reserve, before SQLite hits a full disk',
    tests: [DISK_FULL],
  },

  // ---- cluster-mode TLS --------------------------------------------------------------------
  {
    id: 'tls-member-accepts-unverified-peer',
    file: 'src/transport/tls.ts',
    edits: one('requestCert: true, rejectUnauthorized: true, handshakeTimeout', 'requestCert: true, rejectUnauthorized: false, handshakeTimeout'),
    breaks: "mutual TLS: a member refuses a peer (member or client) whose certificate the CA did not issue, has expired, or is missing",
    tests: ['test/transport/tls.test.ts'],
  },
  {
    id: 'tls-dialler-accepts-unverified-member',
    file: 'src/transport/tls.ts',
    edits: one('host, port, rejectUnauthorized: true, checkServerIdentity', 'host, port, rejectUnauthorized: false, checkServerIdentity'),
    breaks: "mutual TLS: whoever dials a member refuses a member certificate the CA did not issue or that has expired",
    tests: ['test/transport/tls.test.ts'],
  },
  {
    id: 'tls-certificate-identity-unchecked',
    file: 'src/transport/tls.ts',
    edits: one('return cn === id ? null :', 'return cn === id || true ? null :'),
    breaks: 'mutual TLS: a member connection needs a certificate naming that member (a client certificate cannot speak Raft, a member cannot pose as another)',
    tests: ['test/transport/tls.test.ts'],
  },
  // ---- proposer and scheduler --------------------------------------------------------------
  {
    id: 'proposer-retry-with-new-seq',
    file: 'src/swarm/proposer.ts',
    edits: one('const data = (): string => JSON.stringify({ op, now: Date.now(), client, seq, ack: ack() });', 'const data = (): string => JSON.stringify({ op, now: Date.now(), client, seq: ++this.seq, ack: ack() });'),
    breaks: 'exactly-once: a retried proposal keeps its (client, seq) so it is never applied twice',
    tests: [LIN, 'test/service/restart.test.ts'],
  },
  {
    id: 'scheduler-expired-lease-never-reclaimed',
    file: 'src/swarm/scheduler.ts',
    edits: one('if (internal && live.has(assignee) && leaseUntil > now) {', 'if (internal && live.has(assignee)) {'),
    breaks: 'recovery: a task whose lease ran out is reassigned even if its agent still heartbeats',
    tests: [WORKER, TASK_RECOVERY, ORCH, 'test/service/lease-expiry.test.ts'],
  },

  // ---- backup and restore (issue 11) ---------------------------------------------------------
  {
    id: 'backup-snapshot-without-readindex',
    file: 'src/service/backup.ts',
    edits: one('const r = await swarm.proposer.read((leaderId) => {', 'const r = ((fn: (id: string) => any) => fn(swarm.cluster.leader()!.id))((leaderId: string) => {'),
    breaks: 'a backup holds every write committed before the save began (a ReadIndex round first; a deposed leader never answers with its stale state)',
    tests: ['test/service/backup.test.ts'],
  },
  {
    id: 'snapshot-file-hash-unchecked',
    file: 'src/service/snapshot-file.ts',
    edits: one('if (sha256 !== recorded) throw refused(', 'if (false) throw refused('),
    breaks: 'a snapshot file with any changed byte is refused before anything in it is used',
    tests: ['test/service/backup.test.ts', 'test/service/backup-parts.test.ts'],
  },
  {
    id: 'backup-stepped-copy-applies-not-held',
    file: 'src/service/backup.ts',
    edits: one('const release = first.done ? () => {} : host.core.holdApply();', 'const release = () => {};'),
    breaks: 'a backup copied over several event-loop turns holds the leader at one index (no entry applies inside the copy)',
    tests: ['test/service/backup-parts.test.ts'],
  },
  // ---- review of checkpoints, rejoin and client retries (h/review) ----------------------------
  {
    id: 'checkpoint-evicted-session-row-kept',
    file: 'src/machine/coordination-machine.ts',
    edits: one(
      'while (this.sessions.size > MAX_SESSIONS) this.dropSession(this.sessions.keys().next().value as string);',
      'while (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);',
    ),
    breaks: 'a session evicted by count leaves no checkpoint row: a member restarted from rows refuses its retry as the others do',
    tests: ['test/machine/checkpoint-sessions.test.ts'],
  },
  {
    id: 'checkpoint-partial-compaction-not-resumed',
    file: 'src/machine/task-table.ts',
    edits: one('t.byOrch.set(o.id, cur);\n        if (o.finished_at !== null) t.retentionQueue.push(o);', 't.byOrch.set(o.id, cur);\n        if (o.finished_at !== null && !o.compacted) t.retentionQueue.push(o);'),
    breaks: 'a member restarted from rows taken mid-way through a multi-entry compaction goes on compacting as the others do',
    tests: ['test/machine/checkpoint-compaction.test.ts'],
  },
  {
    id: 'checkpoint-clear-ignored',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('if (ch.clear) q.clear.run();', 'if (false) q.clear.run();'),
    breaks: 'a checkpoint after a snapshot install rewrites every table: no stale row of the member survives',
    tests: ['test/host/checkpoint-restart.test.ts'],
  },
  {
    id: 'cluster-client-resends-after-expiry',
    file: 'src/cluster/cluster-client.ts',
    edits: one('if (attempt.uncertain) return sessionExpiredResult(sid, name, seq);', 'if (false) return sessionExpiredResult(sid, name, seq);'),
    breaks: 'exactly-once: a call that may have applied is not re-sent under a new session once its session expired',
    tests: ['test/cluster/client-retry.test.ts'],
  },
  {
    id: 'join-restart-removal-ignored',
    file: 'src/cluster/member-node.ts',
    edits: one('if ((e as { removed?: boolean }).removed === true)', 'if (false && (e as { removed?: boolean }).removed === true)'),
    breaks: 'a joined member removed while it was down stops on its seeds\' answer when it restarts with --join',
    tests: ['test/cluster/rejoin-checks.test.ts'],
  },
  {
    id: 'wiped-bootstrap-member-unchecked',
    file: 'src/cluster/member-node.ts',
    edits: one('if (!joinArgs && prior === undefined', 'if (false && !joinArgs && prior === undefined'),
    breaks: 'a member whose data directory was wiped does not run as an empty-logged voter while its peers bind its id to another directory',
    tests: ['test/cluster/rejoin-checks.test.ts'],
  },
  {
    id: 'unbound-learner-promoted',
    file: 'src/service/members.ts',
    edits: one('if (!b.get(id)?.incarnation) continue;', ''),
    breaks: 'a learner becomes a voter only once its id is bound to its data directory (a wiped unbound joiner could come back as a voter that forgot its acks and votes)',
    tests: ['test/service/member-promotion.test.ts'],
  },
  {
    id: 'join-bound-id-on-new-directory',
    file: 'src/cluster/membership.ts',
    edits: one('if (me.incarnation && me.incarnation !== o.incarnation) {', 'if (false) {'),
    breaks: "--join under a bound member's id on another data directory is refused before it runs (one id, one directory's state)",
    tests: ['test/cluster/rejoin-checks.test.ts'],
  },
  {
    id: 'inproc-delivered-snapshot-streamed-again',
    file: 'src/host/inproc-network.ts',
    edits: one('if (d && d.index === md.index && d.term === md.term && this.clock.now() - d.at < this.resendAfterMs) {', 'if (false) {'),
    breaks: "the in-process network does not stream again a snapshot its receiver accepted whole when the core resends it within the window (the 1,000,000-task install's second transfer)",
    tests: ['test/inproc-network.test.ts'],
  },
  {
    id: 'storage-steps-checkpoint-inline',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('if (this.walSync && !this.workerCheckpoints && !this.stepCheckpointsOffLoop) {', 'if (false) {'),
    breaks: "SQLite's automatic WAL checkpoint (a copy and an fsync) does not run inside a staging step on the event loop: the worker thread checkpoints while steps go on",
    tests: ['test/storage/wal-checkpoint.test.ts'],
  },
  {
    id: 'sqlite-corrupt-recorded-as-entry-error',
    file: 'src/util/local-damage.ts',
    edits: one("const LOCAL_SQLITE_CODES = /^SQLITE_(CORRUPT|NOTADB|IOERR)/;", "const LOCAL_SQLITE_CODES = /^$never/;"),
    breaks: "a damaged page SQLite reports while an entry is applied fail-stops the member, instead of being recorded as that entry's error on this replica alone (its state then differs from the others')",
    tests: ['test/host/stored-damage.test.ts'],
  },
  {
    id: 'host-steps-as-zero-delay-timers',
    file: 'src/host/node-host.ts',
    edits: one('    if (budget) budget.defer(step);\n    else this.opts.clock.setTimeout(step, delayMs);', '    this.opts.clock.setTimeout(step, delayMs);'),
    breaks: "with a turn budget, each step of a stepped checkpoint take or snapshot serialization runs in a loop iteration of its own, not as a zero-delay timer that runs back to back with other members' steps",
    tests: ['test/host/checkpoint-steps.test.ts'],
  },
  {
    id: 'follower-answers-heartbeat-with-ready',
    file: 'src/host/node-host.ts',
    edits: one("    if (m.type === 'MsgHeartbeat') this.sendHeartbeatsNow();\n", ''),
    breaks: "a follower answers a heartbeat when it reads it, not with its next Ready, which may wait behind its own write or other members' turns while the leader's quorum check runs out",
    tests: ['test/host/stalled-loop-elections.test.ts'],
  },
  {
    id: 'tick-without-draining-inbound',
    file: 'src/host/node-host.ts',
    edits: one('    this.opts.transport.drainInbound?.();\n', ''),
    breaks: 'a member reads what already arrived for it before its tick timer judges an election timeout or a quorum check',
    tests: ['test/host/stalled-loop-elections.test.ts'],
  },
  {
    id: 'embedded-checkpoints-inline',
    file: 'src/swarm/swarm.ts',
    edits: one("const EMBEDDED_CHECKPOINT: CheckpointMode = 'worker';", "const EMBEDDED_CHECKPOINT: CheckpointMode = 'inline';"),
    breaks: "embedded members checkpoint their WAL on the worker thread, not inside a commit on the loop every member shares",
    tests: ['test/service/embedded-wal-checkpoints.test.ts'],
  },
  {
    id: 'leader-heartbeats-wait-for-its-write',
    file: 'src/host/node-host.ts',
    edits: one('    this.sendHeartbeatsNow();\n    // Also checked', '    if (!this.persisting) this.sendHeartbeatsNow();\n    // Also checked'),
    breaks: "a leader's heartbeats leave at its tick even while its own write of a Ready is in progress, or its followers start an election behind a slow fsync",
    tests: ['test/host/stalled-loop-elections.test.ts'],
  },
  {
    id: 'leader-ticks-on-each-answer',
    file: 'src/host/node-host.ts',
    edits: one("(this.opts.tickTimerMs > this.opts.tickMs && this.raft.role !== 'leader')", '(this.opts.tickTimerMs > this.opts.tickMs)'),
    breaks: "a leader judges its quorum check at its tick timer after reading the answers that waited, not at the first of them",
    tests: ['test/host/stalled-loop-elections.test.ts'],
  },
  {
    id: 'failed-wal-checkpoint-throws',
    file: 'src/storage/sqlite-storage.ts',
    edits: one("      this.checkpoints.failed++;\n", "      this.checkpoints.failed++;\n      throw e;\n"),
    breaks: 'a WAL checkpoint that fails (a full disk) leaves its pages in the WAL and never throws: thrown from a worker\'s answer it ended the process',
    tests: ['test/service/disk-full.test.ts'],
  },
  {
    id: 'leader-heavy-ready-not-budgeted',
    file: 'src/host/node-host.ts',
    edits: one('      if (budget && readyBytes(rd) >= HEAVY_READY_BYTES) {', "      if (budget && this.raft.role !== 'leader' && readyBytes(rd) >= HEAVY_READY_BYTES) {"),
    breaks: "a leader's write of a 1 MiB entry takes a loop iteration of its own, not the one its other members' items run in",
    tests: ['test/service/large-values-turns.test.ts'],
  },
  {
    id: 'heavy-checkpoint-not-deferred',
    file: 'src/host/node-host.ts',
    edits: one('      if (!wanted && this.deferHeavyCheckpoint()) return;\n', ''),
    breaks: "a checkpoint of large applied entries is stored in a loop iteration of its own, not in the one that applied them",
    tests: ['test/service/large-values-turns.test.ts'],
  },
  {
    id: 'checkpoints-of-many-large-values',
    file: 'src/host/node-host.ts',
    edits: one('export const CHECKPOINT_MAX_APPLIED_CHARS = 512 << 10;', 'export const CHECKPOINT_MAX_APPLIED_CHARS = 4 << 20;'),
    breaks: 'a checkpoint stores about one large value\'s rows, not 4-12 MiB in one transaction on the shared loop',
    tests: ['test/service/large-values-turns.test.ts'],
  },
  {
    id: 'turn-budget-two-per-iteration',
    file: 'src/host/turn-budget.ts',
    edits: one('export const PROCESS_TURN_BUDGET = new TurnBudget();', 'export const PROCESS_TURN_BUDGET = new TurnBudget(undefined, 2);'),
    breaks: "the members of an embedded swarm run one heavy item per loop iteration between them",
    tests: ['test/service/large-values-turns.test.ts'],
  },
  {
    id: 'close-leaves-worker-checkpoint-running',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('    if (this.checkpointInFlight && !WAL_CHECKPOINTER.waitIdle(this.file, 2000))', '    if (false && !WAL_CHECKPOINTER.waitIdle(this.file, 2000))'),
    breaks: "a closed member's files are no longer open on the WAL checkpoint worker (its directory can be removed at once)",
    tests: ['test/storage/wal-checkpoint.test.ts'],
  },
  {
    id: 'lock-dropped-on-gc',
    file: 'src/service/data-dir.ts',
    edits: one('      HELD.add(mutex);\n', ''),
    breaks: 'a data-directory lock stays held until release() or exit, even when its holder keeps no reference to it',
    tests: ['test/service/data-dir-lock.test.ts'],
  },
  {
    id: 'heartbeat-answers-never-asked',
    file: 'src/raft/raft.ts',
    edits: one(' && this.ticks - pr.lastResponseTick <= this.cfg.heartbeatTicks;', ';'),
    breaks: 'an idle leader still hears each caught-up follower at least every other heartbeat interval',
    tests: ['test/raft/heartbeat-answers.test.ts'],
  },
  {
    id: 'heartbeat-answers-skipped-for-reads',
    file: 'src/raft/raft.ts',
    edits: one("    const mayQuiet = context === '' && this.leadTransferee", '    const mayQuiet = this.leadTransferee'),
    breaks: 'a heartbeat that carries a read context is always answered',
    tests: ['test/raft/heartbeat-answers.test.ts'],
  },
  {
    id: 'heartbeat-answers-skipped-at-long-intervals',
    file: 'src/raft/raft.ts',
    edits: one(' && this.cfg.heartbeatTicks * 3 <= this.cfg.electionTicksMin;', ';'),
    breaks: 'answers are skipped only while two heartbeat intervals fit well inside the election timeout',
    tests: ['test/raft/heartbeat-answers.test.ts'],
  },
  {
    id: 'heartbeat-no-answer-ignored-by-follower',
    file: 'src/raft/raft.ts',
    edits: one('        if (m.context !== HEARTBEAT_NO_ANSWER) this.send({ type: \'MsgHeartbeatResp\'', '        if (true) this.send({ type: \'MsgHeartbeatResp\''),
    breaks: 'a follower sends no answer to a heartbeat marked HEARTBEAT_NO_ANSWER',
    tests: ['test/raft/heartbeat-answers.test.ts'],
  },
  {
    id: 'heartbeat-no-answer-read-as-read-ack',
    file: 'src/raft/raft.ts',
    edits: one("        if (m.context !== '' && m.context !== HEARTBEAT_NO_ANSWER) {", "        if (m.context !== '') {"),
    breaks: "an answer echoing the no-answer marker (a member that predates it) is not a read acknowledgement",
    tests: ['test/raft/heartbeat-answers.test.ts'],
  },
  {
    id: 'snapshot-request-makes-no-ready',
    file: 'src/raft/raft.ts',
    edits: one('      this.snapshotWanted ||\n', ''),
    breaks: "a leader that needs a snapshot for a follower has its host make one even when nothing else would make a Ready (an idle leader sends its heartbeats without one)",
    tests: ['test/host/leader-snapshot-release.test.ts', 'test/cluster/snapshot-parts.test.ts', 'test/host/checkpoint-restart.test.ts'],
  },
  {
    id: 'idle-leader-keeps-delivered-snapshot',
    file: 'src/host/node-host.ts',
    edits: one('    this.sendHeartbeatsNow();\n    // Also checked with every Ready; an idle leader makes none (the install\'s answer may\n    // have left nothing else to do).\n    this.releaseDeliveredSnapshot();\n', '    this.sendHeartbeatsNow();\n'),
    breaks: "an idle leader drops its copy of a snapshot once the follower installed it (it makes no Ready that would)",
    tests: ['test/host/leader-snapshot-release.test.ts'],
  },
  {
    id: 'wheel-counts-no-stall',
    file: 'src/util/tick-wheel.ts',
    edits: one('    if (now > from) this.stalled += now - from;', '    if (now > from) this.stalled += 0;'),
    breaks: 'a stall of the loop is capped when members count the time since their last tick: a member that sleeps until its deadline counts only the time not stalled in full',
    tests: ['test/tick-wheel.test.ts'],
  },
  {
    id: 'held-heartbeat-counted-from-read',
    file: 'src/host/node-host.ts',
    edits: [
      { find: 'this.advanceTicks(held ? arrivedAt : now);', replace: 'this.advanceTicks(now);' },
      { find: '    if (held && this.raft.role !== \'leader\') this.advanceTicksAfterHeld(now);', replace: '' },
    ],
    breaks: 'a heartbeat the network held resets the election clock as of its arrival, not of its read',
    tests: ['test/tick-wheel.test.ts'],
  },
  {
    id: 'new-leader-keeps-follower-wake',
    file: 'src/host/node-host.ts',
    edits: one("    if (roleChanged) this.retimeTick('sooner');", ''),
    breaks: "a member that wins an election sends its first heartbeats at once, not at the wake it armed as a sleeping follower",
    tests: ['test/tick-wheel.test.ts'],
  },
  {
    id: 'aligned-wake-early-not-counted',
    file: 'src/host/node-host.ts',
    edits: one('    const now = clockNow < this.tickWakeAt && this.tickWakeAt - clockNow < 1 ? this.tickWakeAt : clockNow;', '    const now = clockNow;'),
    breaks: 'an aligned wake the loop fires just before its grid point counts as at the point: the leader sends its heartbeat then, not 2 ms later on another wakeup',
    tests: ['test/tick-wheel.test.ts'],
  },
  {
    id: 'follower-wake-not-postponed',
    file: 'src/host/node-host.ts',
    edits: one("    if (m.type === 'MsgHeartbeat' || m.type === 'MsgApp') this.retimeTick('later', now);", ''),
    breaks: 'a follower whose leader is alive is not woken by its own timer (each heartbeat read moves its wake on)',
    tests: ['test/tick-wheel.test.ts'],
  },
  {
    id: 'held-heartbeat-overtaken',
    file: 'src/host/inproc-network.ts',
    edits: one('      // judged against the leader lease they renew).\n      if (ls.inbox.held > 0) this.readHeld(ls.inbox);', '      // judged against the leader lease they renew).'),
    breaks: 'a held heartbeat is read before any message that arrived after it (FIFO; votes judged against the lease it renews)',
    tests: ['test/host/held-heartbeats.test.ts'],
  },
  {
    id: 'held-heartbeat-survives-crash',
    file: 'src/host/inproc-network.ts',
    edits: one('      if (ls.held === null) continue;\n      ls.held = null;\n      ep.inbox.held--;\n      ls.counters.dropped++;', '      if (ls.held === null) continue;'),
    breaks: "a crashed receiver's unread held heartbeats are lost with it, not read by its restarted self",
    tests: ['test/host/held-heartbeats.test.ts'],
  },
  {
    id: 'held-heartbeat-ignores-faults',
    file: 'src/host/inproc-network.ts',
    edits: one('    if (f !== this.noFaults && (f.lossRate > 0 || f.duplicateRate > 0 || f.delayMs.max > 0)) return false;', ''),
    breaks: 'heartbeats are held only on links with no loss, duplication or delay in effect (they keep their per-message meaning)',
    tests: ['test/host/held-heartbeats.test.ts'],
  },
  {
    id: 'held-heartbeat-not-superseded',
    file: 'src/host/inproc-network.ts',
    edits: one("      if (h !== null && msg.type === 'MsgHeartbeat' && msg.term >= h.term) {", '      if (false) {'),
    breaks: 'a newer heartbeat on the same link supersedes an unread held one (one read instead of two)',
    tests: ['test/host/held-heartbeats.test.ts'],
  },
  {
    id: 'wal-tail-not-copied',
    file: 'src/storage/sqlite-storage.ts',
    edits: one('        if (r && r.log >= TAIL_INLINE_FRAMES) this.checkpointTail();', ''),
    breaks: 'the writer copies the tail a worker checkpoint left, so the WAL restarts during a burst of writes',
    tests: ['test/storage/wal-checkpoint.test.ts'],
  },
  {
    id: 'wal-worker-one-pass',
    file: 'src/storage/wal-checkpointer.ts',
    edits: one('    while (r.busy === 0 && passes < workerData.maxPasses) {', '    while (false) {'),
    breaks: 'the worker checkpoints again while the writer appended during its pass',
    tests: ['test/storage/wal-checkpoint.test.ts'],
  },
  {
    id: 'disk-full-leader-keeps-heartbeating',
    file: 'src/host/node-host.ts',
    edits: one("    if (this.raft.role === 'leader' && this.diskFullSince !== null) return;", ''),
    breaks: 'a leader that cannot write its log falls silent so that a member that can write leads',
    tests: ['test/service/disk-full.test.ts'],
  },
  {
    id: 'disk-short-leader-keeps-leading',
    file: 'src/host/node-host.ts',
    edits: one('    this.handOffForSpace();\n', ''),
    breaks: 'a leader below the free-space reserve hands its leadership to a follower',
    tests: ['test/service/disk-full.test.ts'],
  },
  {
    id: 'disk-full-refused-at-once',
    file: 'src/swarm/proposer.ts',
    edits: one('      if (now - diskRefusedAt < DISK_FAILOVER_MS && deadline - now > RETRY_PAUSE_MS * 5) return null;', ''),
    breaks: 'a write refused for lack of space is retried while another member takes over',
    tests: ['test/service/disk-full.test.ts'],
  },
  {
    id: 'removal-notice-from-any-member',
    file: 'src/cluster/member-node.ts',
    edits: one('        if (lead !== null && sender !== lead) {', '        if (false) {'),
    breaks: 'a removal notice from a member other than the leader this member follows is refused',
    tests: ['test/cluster/hostile.test.ts'],
  },
  {
    id: 'removal-notice-only-while-following',
    file: 'src/cluster/member-node.ts',
    edits: one('        if (lead !== null && sender !== lead) {', '        if (sender !== lead) {'),
    breaks: 'a member cut off from its leader (following no one) still takes that leader\'s removal notice',
    tests: ['test/cluster/removal-notice.test.ts'],
  },
  {
    id: 'task-status-local-read',
    file: 'src/service/tasks.ts',
    edits: one(
      'export async function taskStatus(swarm: Swarm, orchestrationId?: string): Promise<Record<string, unknown>> {\n  return swarm.proposer.read((leaderId) => {',
      'export async function taskStatus(swarm: Swarm, orchestrationId?: string): Promise<Record<string, unknown>> {\n  return (async (f: (id: string) => Record<string, unknown>) => f(swarm.cluster.leader()!.id))((leaderId) => {',
    ),
    breaks: 'task_status is a linearizable read (a ReadIndex round), not the local state of whoever believes it leads',
    tests: ['test/service/stale-leader-read.test.ts'],
  },
  {
    id: 'refusal-after-send-reads-as-not-applied',
    file: 'src/swarm/proposer.ts',
    edits: one('        if (refused) throw refusedNow(refused.code, refused.message);', '        if (refused) throw refused;'),
    breaks: 'a refusal of a re-send after an attempt that was sent says the outcome is unknown',
    tests: ['test/service/proposer-refusal-after-send.test.ts'],
  },
];
