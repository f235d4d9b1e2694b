"""warden: the Python SDK of wardend, the warden sandbox daemon.

    from warden import Sandbox

    with Sandbox(policy="default") as sb:
        r = sb.run(["python3", "-c", "print(6 * 7)"])
        print(r.exit_code, r.stdout)

Standard library only. See README.md for the API and an agent loop.
"""
from .client import DEFAULT_SOCKET, Client
from .errors import (BadRequest, Conflict, ConnectionFailed, Forbidden, NotFound,
                     PayloadTooLarge, QuotaExceeded, ServerError, Unauthorized, WardenError)
from .sandbox import (EventStream, ExecEvent, Execution, FileInfo, Files, Result, Sandbox)

__version__ = "0.1.0"

__all__ = [
    "Sandbox", "Client", "Result", "ExecEvent", "Execution", "Files", "FileInfo",
    "EventStream", "WardenError", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
    "Conflict", "PayloadTooLarge", "QuotaExceeded", "ServerError", "ConnectionFailed",
    "DEFAULT_SOCKET",
]
