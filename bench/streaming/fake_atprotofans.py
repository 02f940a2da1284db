#!/usr/bin/env python3
"""Stand-in for atprotofans' validateSupporter, for the streaming benchmark only.

Answers GET /xrpc/com.atprotofans.validateSupporter?... with {"valid": true} and
anything else with 404. Listens on 127.0.0.1 only, on a port the OS picks; the port is
written to --port-file (atomically) once the socket listens. Every validateSupporter call
is logged as one "CALL ..." line on stdout, so the benchmark can count how often the
streamer asked (it should be about once per run: the streamer caches answers).

Usage: fake_atprotofans.py --port-file FILE
"""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PATH = "/xrpc/com.atprotofans.validateSupporter"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-atprotofans/1"

    def _send(self, code: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        url = urlparse(self.path)
        if url.path != PATH:
            self._send(404, {"error": "NotFound"})
            return
        q = parse_qs(url.query)
        print("CALL supporter={} subject={} signer={}".format(
            q.get("supporter", [""])[0], q.get("subject", [""])[0], q.get("signer", [""])[0]), flush=True)
        self._send(200, {"valid": True})

    do_HEAD = do_GET

    def log_message(self, fmt: str, *args) -> None:  # keep stdout to CALL lines
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port-file", required=True, help="write the listening port here")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.port_file)
    print("LISTENING 127.0.0.1:%d" % port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
