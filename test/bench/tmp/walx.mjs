import Database from 'better-sqlite3';
import fs from 'node:fs';
const f = '/tmp/walx.db'; for (const s of ['', '-wal', '-shm']) fs.rmSync(f + s, { force: true });
const db = new Database(f); db.pragma('journal_mode=WAL'); db.pragma('synchronous=NORMAL'); db.pragma('wal_autocheckpoint=0');
db.pragma('journal_size_limit=4096000');
db.exec('create table t(k integer primary key, v blob)');
const ins = db.prepare('insert into t(v) values (?)');
const b = Buffer.alloc(8000);
const other = new Database(f);
for (let i = 0; i < 3000; i++) {
  ins.run(b);
  if (i % 200 === 199) { const r = other.pragma('wal_checkpoint(PASSIVE)')[0]; console.log(i, JSON.stringify(r), fs.statSync(f + '-wal').size); }
}
