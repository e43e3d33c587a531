"""A small WSGI app for the end-to-end tests (attack_e2e_test.go), served by
gunicorn as a remote upstream.

  /healthz      200 "ok" (the balancer's HEALTH_PATH)
  /sleep?ms=N   sleeps N ms (default 200), then echoes like any other path
  /big?n=N      streams N bytes ("b" repeated) with a Content-Length
  anything else {"method": ..., "path": ..., "body_len": ...}: the method,
                the path with its query, and the body bytes read from
                wsgi.input (gunicorn decodes a chunked body there)
"""
import json
import time
from urllib.parse import parse_qs


def _query_int(environ, name, default):
    try:
        return int(parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0])
    except ValueError:
        return default


def _read_body(environ):
    stream = environ["wsgi.input"]
    n = 0
    while True:
        block = stream.read(65536)
        if not block:
            return n
        n += len(block)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/healthz":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/big":
        n = max(_query_int(environ, "n", 0), 0)

        def stream():
            block = b"b" * 65536
            left = n
            while left > 0:
                piece = block[: min(left, len(block))]
                left -= len(piece)
                yield piece

        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return stream()
    body_len = _read_body(environ)
    if path == "/sleep":
        time.sleep(_query_int(environ, "ms", 200) / 1000.0)
    full = path
    if environ.get("QUERY_STRING"):
        full += "?" + environ["QUERY_STRING"]
    out = json.dumps({"method": environ.get("REQUEST_METHOD", ""), "path": full, "body_len": body_len}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]
