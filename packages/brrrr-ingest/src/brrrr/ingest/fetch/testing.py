"""A local HTTP server that plays the EBRAINS data-proxy and an S3 bucket, with faults.

For tests (ours and yours): it listens on ``127.0.0.1`` only, on a free port,
in a background thread, and serves what you put in :attr:`FakeDataServer.ebrains`
(dataset id → name → bytes) and :attr:`FakeDataServer.s3` (bucket → key → bytes):

* ``GET /api/v1/datasets/{id}?limit=&marker=&prefix=``: a data-proxy listing page,
  ``{"objects": [{"name", "bytes", "hash", "last_modified", "content_type"}]}``;
* ``GET /api/v1/datasets/{id}/stat``: ``{"objects_count", "bytes"}``;
* ``GET /api/v1/datasets/{id}/{name}``: a 307 redirect to ``/storage/d-{id}/{name}``,
  which serves the bytes (with ``Range``), as the data-proxy does;
* ``GET /{bucket}?list-type=2&prefix=&continuation-token=``: S3 ListObjectsV2 XML,
  :attr:`page_size` keys a page;
* ``GET /{bucket}/{key}``: the bytes (with ``Range``).

:meth:`FakeDataServer.add_faults` queues faults for an object's content requests
(or for listings, with the name :data:`LISTING`); each request uses up the next
one. Every request is logged in :attr:`FakeDataServer.requests`.

Example:
    >>> from brrrr.ingest.fetch.testing import FakeDataServer, Fault
    >>> with FakeDataServer() as server:  # doctest: +SKIP
    ...     server.s3["openneuro.org"] = {"ds000001/README": b"hello"}
    ...     server.add_faults("ds000001/README", Fault("status", status=503))
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = ["LISTING", "FakeDataServer", "Fault", "LoggedRequest"]

LISTING = "<listing>"
_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True)
class Fault:
    """One misbehaviour, used up by one request.

    Args:
        kind: ``"status"``: answer ``status`` (with ``Retry-After`` when given);
            ``"drop"``: promise the whole body, send ``fraction`` of it, close the
            connection; ``"slow"``: wait ``delay_s`` before answering.
        status: HTTP status for ``"status"``.
        retry_after: ``Retry-After`` header value for ``"status"``.
        fraction: Part of the body sent before a ``"drop"``.
        delay_s: Wait of a ``"slow"`` answer.
    """

    kind: Literal["status", "drop", "slow"]
    status: int = 500
    retry_after: str | None = None
    fraction: float = 0.5
    delay_s: float = 1.0


@dataclass(frozen=True)
class LoggedRequest:
    """One request the server received."""

    kind: Literal["list", "stat", "redirect", "content", "other"]
    name: str
    range: str | None
    authorization: str | None


@dataclass
class FakeDataServer:
    """EBRAINS data-proxy + S3 look-alike on ``127.0.0.1``; see the module docstring.

    Args:
        page_size: Most keys in one S3 listing page (the data-proxy pages by ``limit``).
        ebrains: Dataset id → object name → bytes.
        s3: Bucket → key → bytes.
        listed_md5: Name or key → the MD5 the listing shows instead of the true one
            (a wrong-checksum fault).

    Attributes:
        requests: Every request received, in order.
    """

    page_size: int = 1000
    ebrains: dict[str, dict[str, bytes]] = field(default_factory=dict)
    s3: dict[str, dict[str, bytes]] = field(default_factory=dict)
    listed_md5: dict[str, str] = field(default_factory=dict)
    requests: list[LoggedRequest] = field(default_factory=list, init=False)
    _faults: dict[str, list[Fault]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _httpd: ThreadingHTTPServer | None = field(default=None, init=False)

    # ------------------------------------------------------------------ control
    def start(self) -> FakeDataServer:
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        server = self

        class Handler(_Handler):
            owner = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a "slow" fault must not hold up shutdown
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeDataServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add_faults(self, name: str, *faults: Fault) -> None:
        """Queue ``faults`` for the content requests of ``name`` (or :data:`LISTING`)."""
        with self._lock:
            self._faults.setdefault(name, []).extend(faults)

    def count(self, kind: str | None = None, *, name: str | None = None) -> int:
        """Requests logged so far, of one kind and/or for one name."""
        with self._lock:
            return sum(
                (kind is None or r.kind == kind) and (name is None or r.name == name)
                for r in self.requests
            )

    # ------------------------------------------------------------------ internals
    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _next_fault(self, name: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(name)
            return queue.pop(0) if queue else None

    def _md5(self, name: str, data: bytes) -> str:
        return self.listed_md5.get(name) or hashlib.md5(data, usedforsecurity=False).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    owner: FakeDataServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_GET(self) -> None:
        try:
            self._route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. a read timeout)

    # ------------------------------------------------------------------ routing
    def _route(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        srv = self.owner
        if parts[:3] == ["api", "v1", "datasets"] and len(parts) >= 4:
            dataset = srv.ebrains.get(parts[3])
            if dataset is None:
                return self._send(404, b'{"detail": "dataset not found"}')
            rest = "/".join(parts[4:])
            if not rest:
                return self._ebrains_list(dataset, query)
            if rest == "stat":
                self._record("stat", "stat")
                body = {"objects_count": len(dataset), "bytes": sum(map(len, dataset.values()))}
                return self._send(200, json.dumps(body).encode(), "application/json")
            self._record("redirect", rest)
            location = f"/storage/d-{parts[3]}/{quote(rest)}"
            return self._send(307, b"", headers={"Location": location})
        if parts[0] == "storage" and len(parts) >= 3 and parts[1].startswith("d-"):
            name = "/".join(parts[2:])
            data = srv.ebrains.get(parts[1][2:], {}).get(name)
            return self._content(name, data)
        bucket = srv.s3.get(parts[0])
        if bucket is None:
            self._record("other", split.path)
            return self._send(404, b"<Error><Code>NoSuchBucket</Code></Error>")
        key = "/".join(parts[1:])
        if not key:
            return self._s3_list(bucket, query)
        return self._content(key, bucket.get(key))

    def _record(self, kind: Any, name: str) -> None:
        self.owner._log(
            LoggedRequest(
                kind=kind,
                name=name,
                range=self.headers.get("Range"),
                authorization=self.headers.get("Authorization"),
            )
        )

    # ------------------------------------------------------------------ listings
    def _listing_fault(self) -> bool:
        fault = self.owner._next_fault(LISTING)
        return fault is not None and self._apply_fault(fault, None)

    def _ebrains_list(self, dataset: dict[str, bytes], query: dict[str, str]) -> None:
        self._record("list", LISTING)
        if self._listing_fault():
            return
        limit = int(query.get("limit", "50"))
        marker = query.get("marker", "")
        prefix = query.get("prefix", "")
        names = sorted(n for n in dataset if n > marker and n.startswith(prefix))[:limit]
        objects = [
            {
                "name": n,
                "bytes": len(dataset[n]),
                "hash": self.owner._md5(n, dataset[n]),
                "last_modified": "2023-03-01T12:00:00.000000",
                "content_type": "application/octet-stream",
            }
            for n in names
        ]
        self._send(200, json.dumps({"objects": objects}).encode(), "application/json")

    def _s3_list(self, bucket: dict[str, bytes], query: dict[str, str]) -> None:
        self._record("list", LISTING)
        if self._listing_fault():
            return
        prefix = query.get("prefix", "")
        after = query.get("continuation-token", "")
        page = min(int(query.get("max-keys", "1000")), self.owner.page_size)
        keys = sorted(k for k in bucket if k.startswith(prefix) and k > after)
        shown, rest = keys[:page], keys[page:]
        items = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>2023-03-01T12:00:00.000Z"
            f"</LastModified><ETag>&quot;{self.owner._md5(k, bucket[k])}&quot;</ETag>"
            f"<Size>{len(bucket[k])}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            for k in shown
        )
        token = (
            f"<NextContinuationToken>{escape(shown[-1])}</NextContinuationToken>" if rest else ""
        )
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{_S3_NS}">'
            f"<Name>bucket</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(shown)}"
            f"</KeyCount><MaxKeys>{page}</MaxKeys><IsTruncated>{'true' if rest else 'false'}"
            f"</IsTruncated>{items}{token}</ListBucketResult>"
        )
        self._send(200, xml.encode(), "application/xml")

    # ------------------------------------------------------------------ content
    def _content(self, name: str, data: bytes | None) -> None:
        self._record("content", name)
        if data is None:
            return self._send(404, b"no such object")
        fault = self.owner._next_fault(name)
        if fault is not None and self._apply_fault(fault, data):
            return
        start, status, headers = 0, 200, {"Accept-Ranges": "bytes"}
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            first = wanted[len("bytes=") :].split("-", 1)[0]
            start = int(first or 0)
            if start >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(416, b"", headers=headers)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self._send(status, data[start:], headers=headers)

    def _apply_fault(self, fault: Fault, data: bytes | None) -> bool:
        """Act out ``fault``; True when the request is answered (nothing else to send)."""
        if fault.kind == "slow":
            time.sleep(fault.delay_s)
            return False
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._send(fault.status, b"injected fault", headers=headers)
            return True
        body = data or b"x" * 1024
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: int(len(body) * fault.fraction)])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        return True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/octet-stream",
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
