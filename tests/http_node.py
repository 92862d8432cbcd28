"""A tiny HTTP node for the tests: answers every request with JSON that names itself.

Run as ``python tests/http_node.py --name n0 [--port P] [--hang]``; prints
``LISTENING <port>`` once bound (port 0: the OS picks a free one). Binds 127.0.0.1 only.

Paths (the last segments of the path decide, so a node base path in front does not matter):

* ``.../status/NNN`` answers with status NNN; ``.../slow/MS`` waits MS milliseconds first;
* ``.../crash`` kills the whole node (``os._exit``) once the request is read, without an
  answer: a request that crashes its server;
* ``.../redirect?to=URL`` answers ``302`` with ``Location: URL``.

With ``--hang`` the node accepts connections and reads requests but never answers any.
Every answer also carries ``"auth"``: the ``Authorization`` header it received, or null.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "node"
HANG = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body in one write (flushed per request by the stdlib)
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        if HANG:
            threading.Event().wait()  # never answers; the process is killed at teardown
        if parts[-1] == "crash":
            os._exit(3)
        if parts[-1] == "redirect":
            target = dict(pair.partition("=")[::2] for pair in query.split("&")).get("to", "/")
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = 200
        if len(parts) >= 2 and parts[-2] == "status" and parts[-1].isdigit():
            status = int(parts[-1])
        if len(parts) >= 2 and parts[-2] == "slow" and parts[-1].isdigit():
            time.sleep(int(parts[-1]) / 1000)
        payload = json.dumps(
            {
                "node": NAME,
                "method": self.command,
                "path": self.path,
                "body": body.decode("utf-8", "replace"),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "auth": self.headers.get("Authorization"),
            }
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Node", NAME)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


def main() -> None:
    global NAME, HANG
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hang", action="store_true")
    options = parser.parse_args()
    NAME = options.name
    HANG = options.hang
    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
