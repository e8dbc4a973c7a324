import Database from 'better-sqlite3';
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
const f = '/tmp/walx.db'; for (const s of ['', '-wal', '-shm']) fs.rmSync(f + s, { force: true });
const db = new Database(f); db.pragma('journal_mode=WAL'); db.pragma('synchronous=NORMAL'); db.pragma('wal_autocheckpoint=0');
db.pragma('journal_size_limit=4096000');
db.exec('create table t(k integer primary key, v blob)');
const ins = db.prepare('insert into t(v) values (?)');
const b = Buffer.alloc(8000);
const w = new Worker(`
const { parentPort } = require('node:worker_threads');
const Database = require('better-sqlite3');
parentPort.on('message', (f) => { const db = new Database(f, { fileMustExist: true }); let r, prev=-1, n=0; for(;;){ r = db.pragma('wal_checkpoint(PASSIVE)')[0]; n++; if (r.log===prev || n>=${process.env.P ?? 1}) break; prev=r.log;} db.close(); parentPort.postMessage({...r, n}); });
`, { eval: true });
let inflight = false;
w.on('message', (r) => { inflight = false; if (process.env.V) console.log(JSON.stringify(r), fs.statSync(f + '-wal').size); });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (let i = 0; i < 6000; i++) {
  ins.run(b);
  await sleep(Number(process.env.GAP ?? 0));
  if (i % 200 === 199 && !inflight) { inflight = true; w.postMessage(f); }
}
console.log('final wal', fs.statSync(f + '-wal').size);
process.exit(0);
