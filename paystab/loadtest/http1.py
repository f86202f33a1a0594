"""HTTP/1.1 response framing for the event-driven checkout engine: pure, no sockets.

:class:`ResponseReader` is fed the bytes a connection receives and says when one whole
response has arrived: status, the headers the harness needs (``Retry-After``,
``Connection``), and the body — framed by ``Content-Length``, by ``Transfer-Encoding:
chunked``, or by the server closing the connection (HTTP/1.0 style). Bytes after the
response stay buffered for the next one. Anything that is not HTTP raises
:class:`MalformedResponse` (the attempt failed, the connection is closed).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class MalformedResponse(Exception):
    """The peer sent something that is not an HTTP/1.x response."""


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    retry_after: str | None
    keep_alive: bool


class ResponseReader:
    """Accumulates one connection's bytes; :meth:`feed` returns a response when complete."""

    __slots__ = ("_body_len", "_buf", "_chunked", "_head", "_head_end", "_until_close")

    def __init__(self) -> None:
        self._buf = b""
        self.reset()

    def reset(self) -> None:
        """Forget a partly read response (the connection is being dropped)."""
        self._buf = b""
        self._head: tuple[int, str | None, bool] | None = None
        self._head_end = 0
        self._body_len = -1
        self._chunked = False
        self._until_close = False

    @property
    def started(self) -> bool:
        """Some byte of a response has arrived."""
        return bool(self._buf) or self._head is not None

    def feed(self, data: bytes) -> Response | None:
        self._buf = self._buf + data if self._buf else data
        return self._parse()

    def close(self) -> Response | None:
        """The peer closed the connection: a response framed by the close is complete."""
        if self._head is not None and self._until_close:
            status, retry_after, _ = self._head
            body = self._buf[self._head_end:]
            self.reset()
            return Response(status, body, retry_after, False)
        return None

    def _parse(self) -> Response | None:
        buf = self._buf
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise MalformedResponse("response head too long")
                return None
            self._read_head(buf[:end])
            self._head_end = end + 4
            if self._head is not None and self._head[0] in (100, 101, 102, 103):
                # an interim response: drop it and read the real one
                self._buf = buf[self._head_end:]
                self._head = None
                return self._parse()
        assert self._head is not None
        start = self._head_end
        if self._chunked:
            return self._parse_chunked(buf, start)
        if self._until_close:
            return None
        stop = start + self._body_len
        if len(buf) < stop:
            return None
        status, retry_after, keep_alive = self._head
        body = buf[start:stop]
        self._buf = buf[stop:]
        self._head = None
        return Response(status, body, retry_after, keep_alive)

    def _read_head(self, head: bytes) -> None:
        if not head.startswith(b"HTTP/1.") or len(head) < 12 or head[12:13] not in (b" ", b"\r", b""):
            raise MalformedResponse(f"not an HTTP/1.x status line: {head[:40]!r}")
        try:
            status = int(head[9:12])
        except ValueError:
            raise MalformedResponse(f"bad status code: {head[:40]!r}") from None
        keep_alive = head[7:8] == b"1"  # HTTP/1.1 defaults to keep-alive, 1.0 does not
        # One lower-cased copy and a few searches: cheaper than splitting every header line,
        # and the harness needs only these four.
        lower = head.lower()
        length = -1
        value = _header(lower, head, b"\r\ncontent-length:")
        if value is not None:
            try:
                length = int(value)
            except ValueError:
                raise MalformedResponse(f"bad Content-Length: {value[:20]!r}") from None
            if not 0 <= length <= MAX_BODY_BYTES:
                raise MalformedResponse(f"Content-Length out of range: {length}")
        chunked = False
        if b"transfer-encoding:" in lower:
            value = _header(lower, lower, b"\r\ntransfer-encoding:")
            chunked = value is not None and b"chunked" in value
        if b"connection:" in lower:
            value = _header(lower, lower, b"\r\nconnection:")
            if value == b"close":
                keep_alive = False
            elif value == b"keep-alive":
                keep_alive = True
        retry_after = None
        if b"retry-after:" in lower:
            value = _header(lower, head, b"\r\nretry-after:")
            retry_after = value.decode("latin-1") if value is not None else None
        self._chunked = chunked
        if chunked:
            self._body_len = -1
            self._until_close = False
        elif length >= 0:
            self._body_len = length
            self._until_close = False
        elif status in (204, 304) or 100 <= status < 200:
            self._body_len = 0
            self._until_close = False
        else:
            self._until_close = True
            keep_alive = False
        self._head = (status, retry_after, keep_alive)

    def _parse_chunked(self, buf: bytes, start: int) -> Response | None:
        body = bytearray()
        pos = start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size_text = buf[pos:line_end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise MalformedResponse(f"bad chunk size: {size_text[:20]!r}") from None
            if size == 0:
                # the last chunk; trailers (if any) end with an empty line
                trailer_end = buf.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                assert self._head is not None
                status, retry_after, keep_alive = self._head
                self._buf = buf[trailer_end + 4:]
                self._head = None
                return Response(status, bytes(body), retry_after, keep_alive)
            chunk_start = line_end + 2
            chunk_end = chunk_start + size
            if len(buf) < chunk_end + 2:
                return None
            body += buf[chunk_start:chunk_end]
            if len(body) > MAX_BODY_BYTES:
                raise MalformedResponse("chunked body too large")
            pos = chunk_end + 2


def _header(lower: bytes, source: bytes, marker: bytes) -> bytes | None:
    """The value of the header ``marker`` names (searched in ``lower``, cut from ``source``)."""
    i = lower.find(marker)
    if i < 0:
        return None
    start = i + len(marker)
    end = lower.find(b"\r\n", start)
    return source[start:end if end >= 0 else len(source)].strip()
