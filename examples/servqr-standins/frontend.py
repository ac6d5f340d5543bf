#!/usr/bin/env python3
"""Stand-in for the ServQR Next.js frontend (/opt/servqr/admin-ui), for demos and tests.

Listens on 127.0.0.1:3000 (PORT) and answers GET / with 200 and a small HTML page
that names the API it talks to (NEXT_PUBLIC_API_URL from .env.local). Standard
library only.
"""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = """<!doctype html>
<html><head><title>ServQR</title></head>
<body><h1>ServQR admin</h1><p>API: {api}</p></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "servqr-frontend-standin"

    def do_GET(self) -> None:
        body = PAGE.format(api=os.environ.get("NEXT_PUBLIC_API_URL", "/api/v1")).encode()
        status = 200 if self.path == "/" or not self.path.startswith("/api/") else 404
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stdout.write("frontend: " + fmt % args + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "3000"))
    ThreadingHTTPServer((os.environ.get("BIND", "127.0.0.1"), port), Handler).serve_forever()
