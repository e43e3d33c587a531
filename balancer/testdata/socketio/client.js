// socket.io clients through the balancer: node client.js URL [CLIENTS] [MESSAGES]
//
// Each client connects with socket.io's default transports (long-polling
// first, then the upgrade to WebSocket) and a cookie jar (withCredentials,
// which keeps the balancer's sticky cookie as a browser would), sends
// MESSAGES 'msg' events one after the other and waits for each
// acknowledgement. Half-way it waits for the upgrade to WebSocket, so both
// transports carry messages. It never reconnects: a failure stays a failure.
// It prints one JSON summary on stdout and exits 0 once every client is done
// (or the overall deadline passed); balancer/socketio_e2e_test.go judges it.
const { io } = require('socket.io-client');

const url = process.argv[2];
const clients = Number(process.argv[3] || 50);
const messages = Number(process.argv[4] || 100);
const deadline = Date.now() + Number(process.env.CLIENT_DEADLINE_MS || 30000);

const summary = {
  clients, messages,
  connected: 0,      // clients whose socket.io handshake succeeded
  acked: 0,          // acknowledgements received, every one with its own payload
  upgraded: 0,       // clients on the websocket transport at the end
  oneWorker: 0,      // clients whose every acknowledgement came from one worker process
  workers: {},       // acknowledgements by worker id
  sessionUnknown: 0, // errors that carry engine.io's "Session ID unknown"
  errors: {},        // every other failure, by kind
  samples: [],       // the first failures, in full
};

function describe(err) {
  if (!err) return '';
  const parts = [err.message || String(err)];
  if (err.description !== undefined) {
    const d = err.description;
    parts.push(typeof d === 'object' ? (d.message || JSON.stringify(d)) : String(d));
  }
  const ctx = err.context;
  if (ctx && typeof ctx.responseText === 'string' && ctx.responseText) parts.push(ctx.responseText);
  return parts.join(' | ');
}

function fail(kind, err) {
  const text = describe(err);
  if (/Session ID unknown/.test(text)) summary.sessionUnknown++;
  summary.errors[kind] = (summary.errors[kind] || 0) + 1;
  if (summary.samples.length < 10) summary.samples.push(`${kind}: ${text}`);
}

function waitFor(emitter, event, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), Math.max(0, Math.min(ms, deadline - Date.now())));
    emitter.once(event, () => { clearTimeout(t); resolve(true); });
  });
}

async function runClient(c) {
  const s = io(url, { forceNew: true, reconnection: false, withCredentials: true, timeout: 10000 });
  try {
    const connected = await new Promise((resolve) => {
      s.once('connect', () => resolve(true));
      s.once('connect_error', (err) => { fail('connect_error', err); resolve(false); });
    });
    if (!connected) return;
    summary.connected++;
    const engine = s.io.engine;
    engine.on('upgradeError', (err) => fail('upgradeError', err));
    s.on('disconnect', (reason, details) => {
      if (reason !== 'io client disconnect') fail('disconnect ' + reason, details);
    });
    const pids = new Set();
    for (let i = 0; i < messages; i++) {
      if (i === messages >> 1 && engine.transport.name !== 'websocket') {
        await waitFor(engine, 'upgrade', 5000);
      }
      if (!s.connected) return;
      let r;
      try {
        r = await s.timeout(5000).emitWithAck('msg', { c, i });
      } catch (err) {
        fail('ack', err);
        return;
      }
      if (!r || !r.payload || r.payload.c !== c || r.payload.i !== i) {
        fail('bad ack', new Error(JSON.stringify(r)));
        return;
      }
      summary.acked++;
      pids.add(r.worker.pid);
      summary.workers[r.worker.id] = (summary.workers[r.worker.id] || 0) + 1;
    }
    if (pids.size === 1) summary.oneWorker++;
    if (engine.transport.name !== 'websocket') await waitFor(engine, 'upgrade', 5000);
    if (engine.transport.name === 'websocket') summary.upgraded++;
  } finally {
    s.close();
  }
}

const overall = setTimeout(() => {
  summary.errors['deadline'] = 1;
  finish();
}, Math.max(0, deadline - Date.now()));

let done = false;
function finish() {
  if (done) return;
  done = true;
  clearTimeout(overall);
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(0));
}

Promise.all(Array.from({ length: clients }, (_, c) => runClient(c).catch((err) => fail('client', err))))
  .then(finish);
