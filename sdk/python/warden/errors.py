"""Typed exceptions for wardend's API errors.

wardend answers every failed request with a 4xx/5xx status and a body
``{"error": {"code": "<snake_case>", "message": "<precise message>"}}``. The SDK turns that
into one exception class per kind of failure, all subclasses of :class:`WardenError`, so
that callers can catch exactly what they can handle::

    try:
        sb = Sandbox.connect("3f2a...")
    except NotFound:
        sb = Sandbox()
"""


class WardenError(Exception):
    """Base class of every error the SDK raises.

    Attributes:
        status: the HTTP status (``0`` when no response arrived).
        code: wardend's snake_case error code (e.g. ``"not_found"``), or ``""``.
        message: wardend's message, which names the field or object at fault.
    """

    def __init__(self, message, *, status=0, code=""):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self):
        if self.status:
            return f"{self.message} (HTTP {self.status}{', ' + self.code if self.code else ''})"
        return self.message


class BadRequest(WardenError):
    """400: the request was malformed or a field is invalid (the message names it)."""


class Unauthorized(WardenError):
    """401: a TCP request without a valid bearer token."""


class Forbidden(WardenError):
    """403: the caller may not do this."""


class NotFound(WardenError):
    """404: no such sandbox, exec, file or route."""


class Conflict(WardenError):
    """409: the object is not in a state that allows this (e.g. resuming a running sandbox,
    creating a file that exists)."""


class PayloadTooLarge(WardenError):
    """413: the request body is over wardend's limit."""


class QuotaExceeded(WardenError):
    """429: the daemon's or the token's maximum number of sandboxes is reached."""


class ServerError(WardenError):
    """5xx: wardend failed to do what was asked (the message says why)."""


class ConnectionFailed(WardenError):
    """wardend could not be reached, or the connection broke before a full answer."""


_BY_STATUS = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: QuotaExceeded,
}


def error_for(status, code, message):
    """Return the exception instance for an HTTP error status, code and message."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else WardenError
    return cls(message, status=status, code=code)
