// A socket.io worker for the balancer (docs/WORKERS.md): it listens on
// $WORKER_SOCKET, answers $HEALTH_PATH through the plain http handler, and
// acknowledges every 'msg' event with its payload and the worker that took
// it. Run by balancer/socketio_e2e_test.go as WORKER_CMD=node.
const fs = require('fs');
const http = require('http');
const { Server } = require('socket.io');

const socket = process.env.WORKER_SOCKET;
const healthPath = process.env.HEALTH_PATH || '/healthz';
const worker = { id: Number(process.env.WORKER_ID), pid: process.pid };

// socket.io takes /socket.io/ itself; every other path comes here.
const httpServer = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  if (req.url === healthPath) return res.end('ok\n');
  res.statusCode = 404;
  res.end('not found\n');
});
httpServer.keepAliveTimeout = 65000; // longer than the balancer keeps idle connections (30 s)

const io = new Server(httpServer);
io.on('connection', (s) => {
  s.on('msg', (payload, ack) => {
    if (typeof ack === 'function') ack({ payload, worker });
  });
});

try { fs.unlinkSync(socket); } catch (e) { if (e.code !== 'ENOENT') throw e; } // a stale socket file
httpServer.listen(socket);

process.on('SIGTERM', () => {
  // Stop accepting, close every socket.io session (its WebSockets too), and
  // exit 0 once every connection is done; keep-alive ones end once idle.
  io.close(() => process.exit(0));
  setInterval(() => httpServer.closeIdleConnections(), 100).unref();
});
