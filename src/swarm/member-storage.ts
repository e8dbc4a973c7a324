// Opening a member's database with its identity checked. A member that forgot what it
// acknowledged (its file lost, emptied or replaced) must not vote: with its empty log it would
// grant any candidate's vote and could hand leadership to a log missing committed writes.
// So a member starts only on the file created for its current incarnation.

import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { SqliteStorage, type CheckpointMode, type Durability } from '../storage/sqlite-storage.js';
import { UserError } from '../util/errors.js';

export interface MemberStorageOptions {
  /** The incarnation the registry recorded for this member; undefined before identities. */
  incarnation: string | undefined;
  /** The member is being created now: a missing or empty file is expected. */
  fresh: boolean;
  durability: Durability;
  /** Who runs its WAL checkpoints (default 'inline'; see CheckpointMode). */
  checkpoint?: CheckpointMode;
}

export function openMemberStorage(file: string, member: string, o: MemberStorageOptions): { storage: SqliteStorage; incarnation: string } {
  if (!o.fresh && !fs.existsSync(file)) throw lost(member, file, 'is missing');
  let storage: SqliteStorage;
  try {
    storage = SqliteStorage.open(file, { durability: o.durability, fsync: 'threadpool', checkpoint: o.checkpoint });
  } catch (e) {
    throw corrupt(member, file, (e as Error).message);
  }
  try {
    // Reads every page: the start-up's own reads (schema, identity, hard state, last index)
    // would miss a damaged page in the middle of the log. SQLite reports some damage as rows,
    // some by throwing SQLITE_CORRUPT.
    let check: string;
    try {
      check = storage.quickCheck();
    } catch (e) {
      throw corrupt(member, file, (e as Error).message);
    }
    if (check !== 'ok') throw corrupt(member, file, check);
    // Owner-only: the log holds every replicated value. SQLite gives -wal/-shm the file's mode.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) if (fs.existsSync(f)) fs.chmodSync(f, 0o600);
    const found = storage.identity();
    if (found) {
      if (found.member !== member || (o.incarnation !== undefined && found.incarnation !== o.incarnation)) {
        throw lost(member, file, `belongs to ${found.member} incarnation ${found.incarnation}, not ${member} incarnation ${o.incarnation ?? '(any)'}`);
      }
      return { storage, incarnation: found.incarnation };
    }
    if (!o.fresh && storage.isEmpty()) throw lost(member, file, 'is empty');
    // A new member, or a file written before identities existed (it holds this member's state).
    const incarnation = o.incarnation ?? randomUUID();
    storage.setIdentity({ member, incarnation });
    return { storage, incarnation };
  } catch (e) {
    storage.close();
    throw e;
  }
}

function lost(member: string, file: string, what: string): UserError {
  return new UserError(
    'conflict',
    `agent ${member} refuses to start: its database ${file} ${what}, so its identity and what it acknowledged are lost or replaced; ` +
      'a member that forgot its votes and log must not vote. Restore the file from a backup, or remove the agent ' +
      '(agent_terminate mode=graceful) and spawn it again: it then joins as a new member and catches up from the others',
    'agent_id',
  );
}

function corrupt(member: string, file: string, why: string): UserError {
  return new UserError(
    'conflict',
    `agent ${member} cannot start: its database ${file} is damaged (${why}). The other agents keep serving. ` +
      'Move the file away (keep it for diagnosis) and agent_restart the agent: it then joins as a new member and catches up from the others',
    'agent_id',
  );
}
