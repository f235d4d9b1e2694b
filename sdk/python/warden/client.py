"""The connection to wardend: HTTP/1.1 over its unix socket, or over TCP with a token.

Sections: where to connect (socket, url, environment), one request, error mapping, and
reading streamed bodies (NDJSON lines and server-sent events) as they arrive.

Every request opens its own connection: wardend's unix socket costs nothing to connect to,
and a streamed exec or event feed then never blocks another call made meanwhile.
"""
import http.client
import json
import os
import socket as _socket
import urllib.parse

from .errors import ConnectionFailed, WardenError, error_for

DEFAULT_SOCKET = "/run/warden/warden.sock"
DEFAULT_TIMEOUT = 60.0

__all__ = ["Client", "DEFAULT_SOCKET", "DEFAULT_TIMEOUT"]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose transport is a unix stream socket."""

    def __init__(self, path, timeout=None):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Client:
    """A handle on one wardend: where it is and how to authenticate.

    Args:
        socket: path of wardend's unix socket. Default: ``$WARDEN_SOCKET``, else
            ``/run/warden/warden.sock``.
        url: ``http://HOST:PORT`` of a wardend started with ``--listen`` (instead of the
            socket). Default: ``$WARDEN_URL`` when neither ``socket`` nor
            ``$WARDEN_SOCKET`` is set.
        token: the bearer token for ``url`` (default ``$WARDEN_TOKEN``).
        timeout: seconds to wait for an ordinary request's answer (``None``: no limit).
            Streams (exec, events) wait as long as the command or sandbox lives.

    Raises:
        ValueError: both ``socket`` and ``url`` given, or a url that is not http(s).
    """

    def __init__(self, socket=None, url=None, token=None, timeout=DEFAULT_TIMEOUT):
        if socket and url:
            raise ValueError("give either socket= or url=, not both")
        if not socket and not url:
            socket = os.environ.get("WARDEN_SOCKET")
            if not socket:
                url = os.environ.get("WARDEN_URL") or None
                if not url:
                    socket = DEFAULT_SOCKET
        self.socket = os.fspath(socket) if socket else None
        self.url = url
        self.token = token if token is not None else os.environ.get("WARDEN_TOKEN")
        self.timeout = timeout
        self._prefix = ""
        if url:
            u = urllib.parse.urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError(f"url {url!r}: expected http://HOST:PORT")
            self._scheme, self._host, self._port = u.scheme, u.hostname, u.port
            self._prefix = u.path.rstrip("/")

    def __repr__(self):
        where = f"url={self.url!r}" if self.url else f"socket={self.socket!r}"
        return f"Client({where})"

    @property
    def where(self):
        """Where wardend is, for messages: the socket path or the url."""
        return self.url or self.socket

    # ---- one request ----------------------------------------------------------------

    def _connection(self, timeout):
        if self.url:
            cls = (http.client.HTTPSConnection if self._scheme == "https"
                   else http.client.HTTPConnection)
            return cls(self._host, self._port, timeout=timeout)
        return _UnixHTTPConnection(self.socket, timeout=timeout)

    def open(self, method, path, *, query=None, body=None, json_body=None,
             accept="application/json", timeout=...):
        """Send one request and return the open ``http.client.HTTPResponse`` of a 2xx
        answer (the caller reads and closes it).

        ``query`` is a dict or a list of pairs (``None`` values are left out); ``json_body``
        is serialised as JSON, ``body`` (bytes) is sent as application/octet-stream.

        Raises:
            ConnectionFailed: wardend is not reachable or the connection broke.
            WardenError (a subclass): wardend answered with an error status.
        """
        if timeout is ...:
            timeout = self.timeout
        url = self._prefix + path
        if query:
            items = query.items() if isinstance(query, dict) else query
            pairs = [(k, v) for k, v in items if v is not None]
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
        headers = {"Accept": accept, "User-Agent": "warden-python/0.1"}
        if self.url and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif body is not None:
            headers["Content-Type"] = "application/octet-stream"
        conn = self._connection(timeout)
        try:
            try:
                conn.request(method, url, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                # wardend may refuse a body before it has all of it (413) and close the
                # connection; its answer is still there to read.
                pass
            resp = conn.getresponse()
        except TimeoutError as e:
            conn.close()
            raise ConnectionFailed(f"{method} {path}: no answer from wardend at {self.where} "
                                   f"within {timeout} s") from e
        except OSError as e:
            conn.close()
            raise ConnectionFailed(f"{method} {path}: cannot reach wardend at {self.where}: "
                                   f"{e.strerror or e}") from e
        except http.client.HTTPException as e:
            conn.close()
            raise ConnectionFailed(f"{method} {path}: bad answer from wardend at "
                                   f"{self.where}: {e!r}") from e
        if resp.status >= 400:
            try:
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                conn.close()
            raise _error_from(resp.status, raw, f"{method} {path}")
        # The response keeps the socket; closing the response closes it.
        resp._warden_conn = conn
        return resp

    def request(self, method, path, *, query=None, body=None, json_body=None,
                timeout=..., raw=False):
        """Send one request and return its decoded JSON answer (``None`` for an empty
        body), or the raw bytes with ``raw=True``. Raises as :meth:`open`."""
        accept = "application/octet-stream" if raw else "application/json"
        resp = self.open(method, path, query=query, body=body, json_body=json_body,
                         accept=accept, timeout=timeout)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionFailed(f"{method} {path}: connection to wardend broke: "
                                   f"{e!r}") from e
        finally:
            close(resp)
        if raw:
            return data
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as e:
            raise WardenError(f"{method} {path}: wardend answered with invalid JSON: {e}",
                              status=resp.status) from e

    def health(self):
        """``GET /healthz``: True when wardend answers. Raises ConnectionFailed if not."""
        return bool(self.request("GET", "/healthz").get("ok"))


def close(resp):
    """Close a response returned by :meth:`Client.open` and its connection."""
    try:
        resp.close()
    finally:
        conn = getattr(resp, "_warden_conn", None)
        if conn is not None:
            conn.close()


def _error_from(status, raw, what):
    code, message = "", ""
    try:
        err = json.loads(raw).get("error") or {}
        if isinstance(err, dict):
            code = str(err.get("code") or "")
            message = str(err.get("message") or "")
        elif isinstance(err, str):
            message = err
    except (ValueError, AttributeError):
        # Not wardend's JSON (libevent's own answers are HTML): keep a short line of text.
        text = raw.decode("utf-8", "replace").strip()
        if text and len(text) <= 200 and "\n" not in text and not text.startswith("<"):
            message = f"{what}: {text}"
    if not message:
        message = f"{what}: {http.client.responses.get(status, 'error')}"
    return error_for(status, code, message)


# ---- streamed bodies ------------------------------------------------------------------

def iter_lines(resp):
    """Yield the lines (bytes, without the newline) of a streamed body as they arrive."""
    while True:
        try:
            line = resp.readline()
        except (OSError, http.client.HTTPException) as e:
            raise ConnectionFailed(f"stream from wardend broke: {e!r}") from e
        if not line:
            return
        yield line.rstrip(b"\r\n")


def iter_ndjson(resp):
    """Yield one decoded JSON object per non-empty line of an NDJSON stream."""
    for line in iter_lines(resp):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError as e:
                raise WardenError(f"wardend sent a line that is not JSON: {line[:200]!r}") from e


def iter_sse(resp):
    """Yield ``(event, data)`` pairs of a text/event-stream body as they arrive; ``event``
    is ``"message"`` when the server named none, ``data`` is the joined data lines."""
    event, data = None, []
    for line in iter_lines(resp):
        text = line.decode("utf-8", "replace")
        if not text:
            if data or event:
                yield event or "message", "\n".join(data)
            event, data = None, []
            continue
        if text.startswith(":"):
            continue
        field, _, value = text.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event or "message", "\n".join(data)
