// Concord dashboard: one server-sent-event stream of swarm snapshots (aggregated on the
// server), rendered into a few small sections. Every figure shown comes from the server;
// "–" marks what was not measured.
'use strict';

const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const show = (v, unit = '') => (v === null || v === undefined ? '–' : `${esc(v)}${unit}`);

// A token given as /#token=... stays in this tab (the fragment never reaches the server).
const hashToken = new URLSearchParams(location.hash.slice(1)).get('token');
if (hashToken) {
  sessionStorage.setItem('concord-token', hashToken);
  history.replaceState(null, '', location.pathname);
}
const token = sessionStorage.getItem('concord-token');
const authHeaders = token ? { authorization: `Bearer ${token}` } : {};

let current = null; // name of the swarm on view
let last = null; // latest snapshot
let chart = null;
let seenTerm = 0;

// ---- the live stream --------------------------------------------------------------------
// fetch rather than EventSource: it can send the bearer token.
async function stream() {
  for (;;) {
    try {
      const res = await fetch('/dashboard/api/events', { headers: authHeaders });
      if (!res.ok) throw new Error(`${res.status} ${(await res.json()).error}`);
      setConn('live', true);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const data = buf.slice(0, end).split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          buf = buf.slice(end + 2);
          if (data) render(JSON.parse(data));
        }
      }
      setConn('stream ended; reconnecting…', false);
    } catch (e) {
      setConn(`disconnected (${e.message}); retrying…`, false);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function setConn(text, live) {
  const el = $('#conn');
  el.textContent = text;
  el.classList.toggle('live', live);
}

// ---- rendering --------------------------------------------------------------------------
function render(snap) {
  last = snap;
  const names = snap.swarms.map((s) => s.name);
  if (!names.includes(current)) current = names[0] ?? null;
  $('#empty').hidden = current !== null;
  $('#main').hidden = current === null;
  $('#swarms').innerHTML = names.map((n) => `<button data-swarm="${esc(n)}" class="${n === current ? 'on' : ''}">${esc(n)}</button>`).join('');
  const s = snap.swarms.find((x) => x.name === current);
  if (!s) return;
  if (s.error) {
    $('#leader').textContent = '–';
    $('#leader-detail').textContent = `cannot read this swarm: ${s.error}`;
    return;
  }
  renderSummary(s);
  renderMembers(s);
  renderElections(s);
  renderOrchestrations(s, snap.throughput[s.name]);
  renderNetwork(s);
}

function renderSummary(s) {
  const l = s.leader;
  $('#leader').textContent = l.leader_id ?? 'none';
  $('#leader-detail').innerHTML = l.leader_id
    ? `term ${show(l.term)} · commit ${show(l.commit_index)} · ${esc(l.heartbeat_status)} · voted by ${esc((l.voted_by ?? []).join(', '))} · detection ${show(l.detection_ms, ' ms')} · election ${show(l.election_duration_ms, ' ms')} · failover ${show(l.failover_ms, ' ms')} · swarm ${esc(s.status)}`
    : `<span class="note">${esc(l.detail ?? 'no leader')}</span>`;
}

function renderMembers(s) {
  $('#members').innerHTML = s.members
    .map((m) => {
      const role = m.status === 'crashed' ? 'down' : m.status === 'waiting' ? 'waiting' : m.role;
      // A waiting agent has not started: nothing to crash or restart until the group forms.
      const buttons = m.status === 'waiting'
        ? '<span class="note">waiting for bootstrap_expect</span>'
        : m.status === 'crashed'
        ? `<button data-action="restart" data-agent="${esc(m.id)}">Restart</button>`
        : `<button data-action="crash" data-agent="${esc(m.id)}">Crash</button>` +
          (m.status === 'partitioned' ? '' : ` <button data-action="partition" data-agent="${esc(m.id)}">Isolate</button>`);
      return `<div class="member ${esc(m.status)} ${m.role === 'leader' ? 'leader' : ''}" data-member="${esc(m.id)}">
        <h3>${esc(m.id)} <span><span class="badge ${esc(role)}">${esc(role)}</span> <span class="badge ${esc(m.status)}">${esc(m.status)}</span></span></h3>
        <dl>
          <dt>term</dt><dd>${show(m.term)}</dd>
          <dt>commit / applied</dt><dd>${show(m.commit)} / ${show(m.applied)}</dd>
          <dt>match index</dt><dd>${m.role === 'leader' ? 'leader' : show(m.match_index)}</dd>
          <dt>replication lag</dt><dd>${m.role === 'leader' ? 'leader' : show(m.replication_lag_ms, ' ms')}</dd>
          <dt>fsync mean (count)</dt><dd>${show(m.fsync_ms_mean, ' ms')} (${show(m.fsync_count)})</dd>
        </dl>
        ${buttons}
      </div>`;
    })
    .join('');
}

function renderElections(s) {
  const e = s.elections;
  // failover_ms is measured by the leader of its own term only (consensus_leader).
  $('#election-totals').textContent = `${e.total} elections, ${e.leader_failures} leader failures`;
  const maxTerm = Math.max(0, ...e.recent.map((r) => r.term));
  $('#elections tbody').innerHTML = e.recent
    .map((r) => `<tr data-term="${esc(r.term)}" class="${seenTerm && r.term > seenTerm ? 'fresh' : ''}">
      <td title="${esc(new Date(r.at).toLocaleString())}">${esc(r.term)}</td><td>${esc(r.cause)}</td>
      <td>${show(r.old_leader)} → <strong>${esc(r.new_leader)}</strong></td><td class="wrap">${esc(r.voted_by.join(', '))}</td>
      <td>${show(r.detection_ms)} / ${show(r.election_duration_ms)} / ${r.term === s.leader.term ? show(s.leader.failover_ms) : '–'}</td><td>${show(r.tasks_recovered)}</td></tr>`)
    .join('');
  seenTerm = Math.max(seenTerm, maxTerm);
}

function renderOrchestrations(s, series) {
  const o = s.orchestrations;
  const t = o.totals;
  // Runs reported beyond one per finished task: re-executions after crashes and lease expiries.
  const reruns = Math.max(0, t.executions_started - t.completed - t.failed);
  $('#orch-totals').textContent = `${o.total_orchestrations} total · ${t.completed} completed · ${t.failed} failed · ${t.recovered} recovered · ${reruns} re-executions · ${t.duplicates} duplicates`;
  $('#orchs').innerHTML = o.recent
    .map((r) => {
      const pct = (n) => (r.total_tasks > 0 ? (100 * n) / r.total_tasks : 0);
      return `<div class="orch"><div>${esc(r.orchestration_id)} · ${esc(r.task)} · ${esc(r.status)} · ${esc(r.completed)}/${esc(r.total_tasks)} (${esc(r.progress)}%) · failed ${esc(r.failed)} · recovered ${esc(r.recovered)} · re-executions ${Math.max(0, r.executions_started - r.completed - r.failed)}</div>
        <div class="bar"><span class="done" style="width:${pct(r.completed)}%"></span><span class="failed" style="width:${pct(r.failed)}%"></span></div></div>`;
    })
    .join('');
  const data = [series?.t ?? [], series?.per_s ?? []];
  const el = $('#throughput');
  if (!chart || chart.swarm !== s.name) {
    chart?.destroy();
    chart = new uPlot(
      { width: Math.max(300, el.clientWidth), height: 170, series: [{}, { label: 'tasks finished / s', stroke: '#1a7f37', fill: 'rgba(26,127,55,.12)' }], axes: [{}, { size: 60 }], legend: { show: true } },
      data,
      el,
    );
    chart.swarm = s.name;
  } else chart.setData(data);
}

function renderNetwork(s) {
  const ids = s.members.map((m) => m.id);
  const link = new Map(s.links.map((l) => [`${l.from}>${l.to}`, l]));
  const cell = (from, to) => {
    if (from === to) return '<td>·</td>';
    const l = link.get(`${from}>${to}`);
    if (!l) return '<td>–</td>';
    const loss = l.loss_rate === null ? '–' : `${(l.loss_rate * 100).toFixed(1)}%`;
    const rtt = l.rtt_ms_mean === null ? '' : ` ${l.rtt_ms_mean.toFixed(2)} ms`;
    return `<td class="${l.connected ? '' : 'cut'}" title="${esc(`${from} → ${to}: dropped ${l.dropped ?? '–'}, rtt last ${l.rtt_ms_last ?? '–'} ms`)}">${l.connected ? '' : 'cut '}${loss}${rtt}</td>`;
  };
  $('#network').innerHTML = `<thead><tr><th>from \\ to</th>${ids.map((i) => `<th>${esc(i)}</th>`).join('')}</tr></thead><tbody>${ids.map((f) => `<tr><th>${esc(f)}</th>${ids.map((t) => cell(f, t)).join('')}</tr>`).join('')}</tbody>`;
}

// ---- actions ----------------------------------------------------------------------------
async function post(action, body) {
  const out = $('#action-result');
  out.textContent = `${action}…`;
  try {
    const res = await fetch(`/dashboard/api/actions/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', ...authHeaders }, body: JSON.stringify({ swarm: current, ...body }) });
    const r = await res.json();
    out.textContent = res.ok ? `${action}: ${summarize(r)}` : `${action} refused: ${r.error}`;
  } catch (e) {
    out.textContent = `${action} failed: ${e.message}`;
  }
}

function summarize(r) {
  if (r.new_leader) return `new leader ${r.new_leader} (term ${r.term})`;
  if (r.orchestration_id) return `${r.orchestration_id} with ${r.total_tasks} tasks`;
  return Object.entries(r).filter(([, v]) => typeof v !== 'object').map(([k, v]) => `${k}=${v}`).join(' ');
}

document.addEventListener('click', (ev) => {
  const b = ev.target.closest('button');
  if (!b) return;
  if (b.dataset.swarm) {
    current = b.dataset.swarm;
    memPage = 1;
    if (last) render(last);
    loadKeys();
  } else if (b.dataset.action === 'orchestrate') post('orchestrate', { count: Number($('#orch-count').value) });
  else if (b.dataset.action) post(b.dataset.action, b.dataset.agent ? { agent_id: b.dataset.agent } : {});
});

// ---- memory browser (on demand, paginated) ----------------------------------------------
let memPage = 1;

async function getJson(url) {
  const res = await fetch(url, { headers: authHeaders });
  const r = await res.json();
  if (!res.ok) throw new Error(r.error);
  return r;
}

async function loadKeys() {
  if (!current) return;
  const q = new URLSearchParams({ swarm: current, prefix: $('#mem-prefix').value, page: String(memPage) });
  if ($('#mem-ns').value) q.set('namespace', $('#mem-ns').value);
  try {
    const r = await getJson(`/dashboard/api/memory?${q}`);
    $('#mem-keys').innerHTML = r.keys.map((k) => `<li data-key="${esc(k.key)}">${esc(k.key)} <span class="note">v${esc(k.version)}${k.expires_at ? ' · TTL' : ''}</span></li>`).join('') || '<li class="note">no keys</li>';
    $('#mem-page').textContent = ` page ${r.page}${r.truncated ? '+' : ''} `;
    $('#mem-next').disabled = !r.truncated;
    $('#mem-prev').disabled = r.page <= 1;
  } catch (e) {
    $('#mem-keys').innerHTML = `<li class="note">${esc(e.message)}</li>`;
  }
}

$('#mem-keys').addEventListener('click', async (ev) => {
  const li = ev.target.closest('li[data-key]');
  if (!li) return;
  const q = new URLSearchParams({ swarm: current, key: li.dataset.key });
  if ($('#mem-ns').value) q.set('namespace', $('#mem-ns').value);
  try {
    const r = await getJson(`/dashboard/api/memory/key?${q}`);
    const ttl = r.expires_at ? `${Math.max(0, Math.round((Date.parse(r.expires_at) - Date.now()) / 1000))} s left (expires ${r.expires_at})` : 'none';
    $('#mem-value').textContent = `${r.key}\nversion ${r.version} · TTL ${ttl} · updated ${r.updated_at ?? r.computed_at}\n\n${JSON.stringify(r.value, null, 2)}`;
  } catch (e) {
    $('#mem-value').textContent = e.message;
  }
});

$('#mem-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  memPage = 1;
  loadKeys();
});
$('#mem-prev').addEventListener('click', () => {
  memPage = Math.max(1, memPage - 1);
  loadKeys();
});
$('#mem-next').addEventListener('click', () => {
  memPage++;
  loadKeys();
});

stream();
// The key list is read on demand: once a swarm is known, then on each search or page.
const firstKeys = setInterval(() => {
  if (current) {
    clearInterval(firstKeys);
    loadKeys();
  }
}, 200);
