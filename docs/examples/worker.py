#!/usr/bin/env python3
# A procbal worker in Python, standard library only (see docs/WORKERS.md).
import http.server, os, signal, socketserver, threading

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == os.environ.get("HEALTH_PATH", "/healthz"):
            body = b"ok\n"
        else:
            body = f"hello from python worker {os.environ['WORKER_ID']} pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # no idle connection outlives a stop
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # no access log (a unix socket has no client address)
        pass

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    pass  # a thread per connection; server_close() waits for them

path = os.environ["WORKER_SOCKET"]
if os.path.exists(path):
    os.remove(path)  # a stale socket file would make bind fail
server = Server(path, Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()  # returns once SIGTERM has stopped accepting
server.server_close()  # finishes in-flight requests
os.remove(path)
