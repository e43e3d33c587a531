// procbal dashboard: polls /admin/stats, draws the table, the totals and
// the charts, and drives scale, reload and recycle. No framework; uPlot
// draws the charts. Served under a Content-Security-Policy that allows no
// inline script or style, so everything is built with DOM calls.
(() => {
  'use strict';

  const CSRF_KEY = 'procbal.csrf';
  const TABLE_EVERY_MS = 1000;
  const COLORS = ['#2b6cb0', '#dd6b20', '#38a169', '#d53f8c', '#805ad5', '#319795', '#b7791f', '#e53e3e',
    '#4a5568', '#00a3c4', '#97266d', '#2f855a'];

  const $ = (sel) => document.querySelector(sel);
  let csrf = localStorage.getItem(CSRF_KEY) || '';
  let tableTimer = 0;
  let chartTimer = 0;
  let chartEveryMs = 5000;
  let scaleTouched = false;
  let busy = false;
  const charts = {};

  class AuthError extends Error {}

  // api sends one admin call with the session's CSRF token and returns
  // its JSON answer; a 401, or a 403 about the CSRF token, means the
  // session is gone: back to the login form.
  async function api(method, path, body) {
    const headers = { 'Accept': 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = csrf;
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    const msg = (data && data.error) || (res.status + ' ' + res.statusText);
    if (res.status === 401 || (res.status === 403 && /CSRF/.test(msg))) {
      showLogin(res.status === 401 ? '' : msg);
      throw new AuthError(msg);
    }
    if (!res.ok) throw new Error(msg);
    return data;
  }

  // ---- login ----

  function showLogin(msg) {
    stopPolling();
    $('#dash').hidden = true;
    $('#logout-btn').hidden = true;
    $('#login').hidden = false;
    $('#login-error').textContent = msg || '';
    $('#token').focus();
  }

  async function login(ev) {
    ev.preventDefault();
    const btn = $('#login-btn');
    btn.disabled = true;
    $('#login-error').textContent = '';
    try {
      const res = await fetch('/admin/login', {
        method: 'POST', credentials: 'same-origin', cache: 'no-store',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ token: $('#token').value }),
      });
      const data = await res.json();
      if (!res.ok) throw new Error(data.error || res.statusText);
      csrf = data.csrf || '';
      localStorage.setItem(CSRF_KEY, csrf);
      $('#token').value = '';
      showDash(data.token_required !== false);
    } catch (e) {
      $('#login-error').textContent = 'Login failed: ' + e.message;
    } finally {
      btn.disabled = false;
    }
  }

  async function logout() {
    try { await api('POST', '/admin/logout'); } catch (_) { /* the cookie is dropped anyway */ }
    csrf = '';
    localStorage.removeItem(CSRF_KEY);
    showLogin('Logged out.');
  }

  // ---- polling ----

  function showDash(loginNeeded) {
    $('#login').hidden = true;
    $('#dash').hidden = false;
    $('#logout-btn').hidden = !loginNeeded;
    stopPolling();
    refresh();
    refreshCharts();
  }

  function stopPolling() {
    clearTimeout(tableTimer);
    clearTimeout(chartTimer);
    tableTimer = chartTimer = 0;
  }

  async function refresh() {
    clearTimeout(tableTimer);
    try {
      render(await api('GET', '/admin/stats'));
      $('#updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      if (e instanceof AuthError) return;
      $('#updated').textContent = 'update failed: ' + e.message;
    }
    tableTimer = setTimeout(refresh, TABLE_EVERY_MS);
  }

  async function refreshCharts() {
    clearTimeout(chartTimer);
    try {
      const s = await api('GET', '/admin/stats?history=1');
      if (s.interval_seconds > 0) chartEveryMs = s.interval_seconds * 1000;
      if (s.history) drawCharts(s.history);
    } catch (e) {
      if (e instanceof AuthError) return;
    }
    chartTimer = setTimeout(refreshCharts, chartEveryMs);
  }

  // ---- rendering ----

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function mib(bytes) {
    if (!bytes) return '-';
    return (bytes / 1048576).toFixed(1) + ' MiB';
  }

  function ms(v) {
    if (v === undefined || v === null) return '-';
    return v < 10 ? v.toFixed(2) + ' ms' : v.toFixed(0) + ' ms';
  }

  function rate(v) {
    if (!v) return '0';
    return v < 10 ? v.toFixed(1) : v.toFixed(0);
  }

  function duration(secs) {
    secs = Math.max(0, Math.floor(secs));
    const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600),
      m = Math.floor(secs % 3600 / 60), s = secs % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }

  function card(label, value) {
    const c = el('div', 'card');
    c.append(el('div', 'v', value), el('div', 'k', label));
    return c;
  }

  function render(s) {
    const b = s.balancer;
    $('#balancer').textContent = 'pid ' + b.pid + ' · up ' + duration(b.uptime_seconds) + ' · ' + s.strategy +
      ' · balancer RSS ' + mib(b.rss_bytes);

    const t = s.totals;
    let restarts = 0;
    for (const k in s.restarts) restarts += s.restarts[k];
    $('#totals').replaceChildren(
      card('healthy / upstreams', t.healthy + ' / ' + t.workers),
      card('req/s', rate(t.req_per_sec)),
      card('errors/s', rate(t.errors_per_sec)),
      card('p50 (1 min)', ms(t.p50_ms)),
      card('p99 (1 min)', ms(t.p99_ms)),
      card('in-flight', String(t.inflight)),
      card('requests', String(t.requests)),
      card('RSS', mib(t.rss_bytes)),
      card('heap', mib(t.heap_alloc_bytes)),
      card('restarts', String(restarts)),
    );

    const scaleInput = $('#scale-n');
    scaleInput.min = String(s.min_workers);
    scaleInput.max = String(s.worker_limit);
    if (!scaleTouched) scaleInput.value = String(s.local_workers);

    const anyTunnels = s.workers.some((w) => w.tunnels > 0);
    $('#workers').classList.toggle('hide-tunnels', !anyTunnels);
    const rows = s.workers.map((w) => row(w));
    $('#workers tbody').replaceChildren(...rows);
  }

  function row(w) {
    const tr = el('tr');
    tr.dataset.id = String(w.id);
    tr.dataset.state = w.state;
    tr.dataset.pid = String(w.pid);
    tr.dataset.restarts = String(w.restarts);
    const state = el('td', 'state-cell');
    state.append(el('span', 'state ' + w.state, w.state));
    const restarts = el('td', 'restarts', String(w.restarts) + (w.restart_cause ? ' (' + w.restart_cause + ')' : ''));
    const heap = w.memory.heap_alloc_bytes !== undefined ? mib(w.memory.heap_alloc_bytes) : '-';
    const check = el('td', 'check');
    if (w.last_check_error) {
      check.textContent = w.last_check_error;
      check.title = w.last_check_error + (w.last_check_at ? ' (probe at ' + w.last_check_at + ')' : '');
    } else {
      check.textContent = '-';
      check.classList.add('old');
      if (w.last_check_at) check.title = 'last probe passed at ' + w.last_check_at;
    }
    const act = el('td', 'act');
    if (w.kind === 'local') {
      const btn = el('button', 'recycle-btn', 'Recycle');
      btn.type = 'button';
      btn.dataset.id = String(w.id);
      btn.title = 'Replace this worker: its replacement starts, and takes over once healthy';
      btn.disabled = busy || w.state !== 'healthy';
      act.append(btn);
    }
    tr.append(
      el('td', 'id', String(w.id)),
      el('td', 'kind', w.kind),
      state,
      el('td', 'pid', w.pid ? String(w.pid) : '-'),
      el('td', 'uptime', duration(w.uptime_seconds)),
      restarts,
      el('td', 'rss', mib(w.memory.rss_bytes)),
      el('td', 'heap', heap),
      el('td', 'inflight', String(w.inflight)),
      el('td', 'tunnels', String(w.tunnels)),
      el('td', 'rps', rate(w.req_per_sec)),
      el('td', 'p50', ms(w.p50_ms)),
      el('td', 'p99', ms(w.p99_ms)),
      check,
      act,
    );
    return tr;
  }

  // ---- charts ----

  function color(id) { return COLORS[(id - 1 + COLORS.length * 100) % COLORS.length]; }

  function drawCharts(h) {
    const mb = (v) => (v === null ? null : v / 1048576);
    const id = (v) => v;
    drawChart('rps', '#chart-rps', h, 'req_per_sec', id, true);
    drawChart('errors', '#chart-errors', h, 'errors_per_sec', id, true);
    drawChart('rss', '#chart-rss', h, 'rss_bytes', mb, false);
  }

  function drawChart(key, sel, h, field, conv, withTotal) {
    const target = $(sel);
    const data = [h.times];
    const series = [{}];
    for (const w of h.workers) {
      data.push(w[field].map(conv));
      series.push({ label: 'worker ' + w.id, stroke: color(w.id), width: 1.5, value: fmtValue });
    }
    if (withTotal) {
      data.push(h.total[field].map(conv));
      series.push({ label: 'all', stroke: '#1d2330', width: 1, dash: [4, 4], value: fmtValue });
    }
    const sig = series.map((s) => s.label || '').join(',');
    const width = Math.max(300, target.clientWidth - 4);
    const c = charts[key];
    if (c && c.sig === sig) {
      c.plot.setData(data);
      if (c.width !== width) {
        c.plot.setSize({ width, height: 200 });
        c.width = width;
      }
      return;
    }
    if (c) c.plot.destroy();
    const plot = new uPlot({
      width, height: 200, series,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max || 0, 1) * 1.1] } },
      axes: [{}, { size: 60 }],
      legend: { live: true },
    }, data, target);
    charts[key] = { plot, sig, width };
  }

  function fmtValue(u, v) {
    return v === null || v === undefined ? '-' : (v < 10 ? v.toFixed(2) : v.toFixed(0));
  }

  // ---- operations ----

  async function operation(label, method, path, body) {
    if (busy) return;
    busy = true;
    const status = $('#op-status');
    status.className = 'muted';
    status.textContent = label + '…';
    for (const b of document.querySelectorAll('.controls button, .recycle-btn')) b.disabled = true;
    try {
      const res = await api(method, path, body);
      status.textContent = label + ': done ' + JSON.stringify(res);
    } catch (e) {
      status.className = 'error';
      status.textContent = label + ' failed: ' + e.message;
    } finally {
      busy = false;
      scaleTouched = false;
      for (const b of document.querySelectorAll('.controls button')) b.disabled = false;
      refresh();
    }
  }

  function scale() {
    const n = parseInt($('#scale-n').value, 10);
    if (Number.isNaN(n)) {
      $('#op-status').textContent = 'Scale: enter a number of workers';
      return;
    }
    operation('Scale to ' + n, 'POST', '/admin/scale', { workers: n });
  }

  function reload() { operation('Reload', 'POST', '/admin/reload'); }

  function recycle(id) { operation('Recycle worker ' + id, 'POST', '/admin/recycle', { worker: id }); }

  // ---- start ----

  async function start() {
    $('#login-form').addEventListener('submit', login);
    $('#logout-btn').addEventListener('click', logout);
    $('#scale-btn').addEventListener('click', scale);
    $('#reload-btn').addEventListener('click', reload);
    $('#scale-n').addEventListener('input', () => { scaleTouched = true; });
    $('#workers tbody').addEventListener('click', (ev) => {
      const btn = ev.target.closest('.recycle-btn');
      if (btn) recycle(parseInt(btn.dataset.id, 10));
    });
    window.addEventListener('resize', () => refreshCharts());
    try {
      const s = await api('GET', '/admin/session');
      if (s.authenticated) {
        showDash(s.token_required);
      } else {
        showLogin('');
      }
    } catch (e) {
      if (!(e instanceof AuthError)) showLogin('Cannot reach the admin API: ' + e.message);
    }
  }

  start();
})();
