"""A tiny HTTP node for the tests: answers every request with JSON that names itself.

Run as ``python tests/http_node.py --name n0 [--port P]``; prints ``LISTENING <port>`` once
bound (port 0: the OS picks a free one). ``/status/NNN`` answers with status NNN;
``/slow/MS`` waits MS milliseconds first. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "node"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body in one write (flushed per request by the stdlib)
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].strip("/").split("/")
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
    global NAME
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    NAME = options.name
    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
