// A procbal worker in Node, its http module only (see docs/WORKERS.md).
const fs = require('fs');
const http = require('http');

const socket = process.env.WORKER_SOCKET;
const healthPath = process.env.HEALTH_PATH || '/healthz';

const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  if (req.url === healthPath) return res.end('ok\n');
  res.end(`hello from node worker ${process.env.WORKER_ID} pid ${process.pid}\n`);
});
server.keepAliveTimeout = 65000; // longer than the balancer keeps idle connections (30 s)

try { fs.unlinkSync(socket); } catch (e) { if (e.code !== 'ENOENT') throw e; } // a stale socket file
server.listen(socket);

process.on('SIGTERM', () => {
  server.close(() => process.exit(0)); // stop accepting; exit 0 once every connection is done
  setInterval(() => server.closeIdleConnections(), 100).unref(); // end keep-alive connections once idle
});
