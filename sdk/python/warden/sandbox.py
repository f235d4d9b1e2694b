"""Sandboxes: create or attach, run commands (buffered or streamed), move files, watch.

Sections: result and event types, streamed exec (:class:`Execution`), files
(:class:`Files`), telemetry events (:class:`EventStream`), and :class:`Sandbox` itself.
"""
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Union
import urllib.parse

from .client import DEFAULT_TIMEOUT, Client, close, iter_ndjson, iter_sse
from .errors import ConnectionFailed, NotFound, WardenError

__all__ = ["Sandbox", "Result", "ExecEvent", "Execution", "Files", "FileInfo", "EventStream"]

Command = Union[str, List[str]]


def _argv(cmd):
    """A command as wardend wants it: a string runs under ``sh -c``."""
    if isinstance(cmd, str):
        return ["sh", "-c", cmd]
    argv = [str(a) for a in cmd]
    if not argv:
        raise ValueError("cmd: must not be empty")
    return argv


def _exec_body(cmd, env, workdir, stdin, timeout):
    body = {"cmd": _argv(cmd)}
    if env:
        body["env"] = {str(k): str(v) for k, v in env.items()}
    if workdir is not None:
        body["workdir"] = str(workdir)
    if stdin is not None:
        body["stdin"] = stdin.decode() if isinstance(stdin, (bytes, bytearray)) else stdin
    if timeout is not None:
        body["timeout"] = timeout
    return body


def _stream_timeout(client, timeout):
    """How long a socket read may wait during an exec: unbounded unless the command has a
    timeout (then that plus the client's own margin)."""
    if timeout is None or client.timeout is None:
        return None
    return float(timeout) + client.timeout


# ---- results and events ---------------------------------------------------------------

@dataclass
class Result:
    """The outcome of :meth:`Sandbox.run` (or :meth:`Execution.wait`).

    ``stdout``/``stderr`` are text (bytes that are not UTF-8 are replaced); ``exit_code`` is
    the command's status, ``128+N`` when killed by signal N, 127 when it could not be
    executed; ``timed_out`` says the ``timeout`` killed it; ``truncated`` says wardend
    dropped output over its buffering cap (use :meth:`Sandbox.exec` to stream instead);
    ``error`` says why a command could not be started (exit code 127), else ``None``.
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False
    exec_id: Optional[int] = None
    truncated: bool = False
    error: Optional[str] = None

    @property
    def ok(self):
        """True when the command exited 0 and did not time out."""
        return self.exit_code == 0 and not self.timed_out


@dataclass
class ExecEvent:
    """One event of a streamed exec.

    ``type`` is ``"started"`` (``exec_id``, ``pid``), ``"stdout"`` or ``"stderr"`` (``data``:
    a chunk of text as it was written), or ``"exit"`` (``exit_code``, ``timed_out``, and
    ``error`` when the command could not be started); the exit event is always the last.
    """

    type: str
    data: Optional[str] = None
    exit_code: Optional[int] = None
    timed_out: bool = False
    exec_id: Optional[int] = None
    pid: Optional[int] = None
    error: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, obj):
        return cls(type=str(obj.get("type", "")), data=obj.get("data"),
                   exit_code=obj.get("exit_code"), timed_out=bool(obj.get("timed_out")),
                   exec_id=obj.get("exec_id"), pid=obj.get("pid"), error=obj.get("error"),
                   raw=obj)


class Execution:
    """A command started by :meth:`Sandbox.exec`, streaming its output as it is written.

    Iterate over it for :class:`ExecEvent` objects; iteration ends after the ``exit``
    event. ``exec_id`` and ``pid`` are known as soon as :meth:`Sandbox.exec` returns.
    Use it as a context manager (or call :meth:`close`) to drop the stream early; closing
    the stream does not stop the command, :meth:`kill` does.
    """

    def __init__(self, sandbox, resp):
        self.sandbox = sandbox
        self._resp = resp
        self._events = iter_ndjson(resp)
        self._pending = []
        self._finished = False
        self.exec_id = None
        self.pid = None
        self.exit_code = None
        self.timed_out = False
        self.error = None
        # Read up to the "started" event, so that kill() works before iterating.
        for obj in self._events:
            ev = ExecEvent.from_json(obj)
            self._pending.append(ev)
            if ev.type == "started":
                self.exec_id, self.pid = ev.exec_id, ev.pid
                break
            if ev.type == "exit":
                break

    def __iter__(self) -> Iterator[ExecEvent]:
        return self

    def __next__(self) -> ExecEvent:
        if self._pending:
            ev = self._pending.pop(0)
        elif self._finished:
            raise StopIteration
        else:
            try:
                ev = ExecEvent.from_json(next(self._events))
            except StopIteration:
                self.close()
                raise ConnectionFailed(
                    f"exec {self.exec_id} in sandbox {self.sandbox.id}: the stream ended "
                    "before the command's exit") from None
        if ev.type == "exit":
            self.exit_code, self.timed_out, self.error = ev.exit_code, ev.timed_out, ev.error
            self._finished = True
            self.close()
        return ev

    def kill(self, signal=9):
        """Send ``signal`` (a number, default SIGKILL) to the command's process group."""
        if self.exec_id is None:
            raise WardenError(f"sandbox {self.sandbox.id}: the exec has no id yet")
        self.sandbox.client.request(
            "POST", f"/v1/sandboxes/{self.sandbox.id}/exec/{self.exec_id}/kill",
            json_body={"signal": int(signal)})

    def wait(self) -> Result:
        """Read the rest of the stream and return it as a :class:`Result`."""
        out, err = [], []
        for ev in self:
            if ev.type == "stdout":
                out.append(ev.data or "")
            elif ev.type == "stderr":
                err.append(ev.data or "")
        return Result("".join(out), "".join(err), self.exit_code, self.timed_out,
                      self.exec_id, error=self.error)

    def close(self):
        """Stop reading the stream (the command keeps running)."""
        if self._resp is not None:
            close(self._resp)
            self._resp = None
        self._finished = self._finished or not self._pending

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- files ----------------------------------------------------------------------------

@dataclass
class FileInfo:
    """What :class:`Files` says about a path inside the sandbox: ``type`` is ``"file"``,
    ``"dir"``, ``"symlink"`` or ``"other"``; ``mode`` the permission bits as an int
    (``0o644``); ``mtime`` an RFC 3339 string."""

    path: str
    name: str
    type: str
    size: int = 0
    mode: int = 0
    mtime: str = ""

    @classmethod
    def from_json(cls, obj):
        mode = obj.get("mode", 0)
        if isinstance(mode, str):
            mode = int(mode, 8) if mode else 0
        return cls(path=obj.get("path", ""), name=obj.get("name", ""),
                   type=obj.get("type", "other"), size=int(obj.get("size") or 0),
                   mode=mode, mtime=obj.get("mtime", ""))

    @property
    def is_dir(self):
        return self.type == "dir"

    @property
    def is_file(self):
        return self.type == "file"


class Files:
    """The sandbox's file system, seen from outside (``sandbox.files``).

    Paths are absolute paths inside the sandbox. wardend resolves them inside the
    sandbox's root, so ``..`` and symlinks cannot lead out of it; files it creates belong
    to the sandbox's user.
    """

    def __init__(self, sandbox):
        self._sb = sandbox

    def _path(self, suffix=""):
        return f"/v1/sandboxes/{self._sb.id}/files{suffix}"

    def read(self, path) -> bytes:
        """The content of a file, as bytes. Raises NotFound, BadRequest (a directory)."""
        return self._sb.client.request("GET", self._path(), query={"path": str(path)},
                                       raw=True)

    def read_text(self, path, encoding="utf-8", errors="strict") -> str:
        """The content of a file, decoded."""
        return self.read(path).decode(encoding, errors)

    def write(self, path, data: Union[bytes, str], mode=0o644) -> FileInfo:
        """Create or replace a file with ``data`` (str is written as UTF-8) and permission
        bits ``mode``; its directory must exist (see :meth:`mkdir`)."""
        if isinstance(data, str):
            data = data.encode()
        obj = self._sb.client.request(
            "PUT", self._path(), query={"path": str(path), "mode": f"{mode:04o}"},
            body=bytes(data))
        return FileInfo.from_json(obj or {"path": str(path)})

    def list(self, path="/") -> List[FileInfo]:
        """The entries of a directory (without ``.`` and ``..``)."""
        obj = self._sb.client.request("GET", self._path("/list"), query={"path": str(path)})
        return [FileInfo.from_json(e) for e in obj.get("entries", [])]

    def stat(self, path) -> FileInfo:
        """What a path is (symlinks are not followed). Raises NotFound."""
        obj = self._sb.client.request("GET", self._path("/stat"), query={"path": str(path)})
        return FileInfo.from_json(obj)

    def exists(self, path) -> bool:
        """True when ``path`` exists inside the sandbox."""
        try:
            self.stat(path)
            return True
        except NotFound:
            return False

    def remove(self, path, recursive=False):
        """Remove a file, or a directory (with everything under it if ``recursive``)."""
        self._sb.client.request("DELETE", self._path(), query={
            "path": str(path), "recursive": "true" if recursive else None})

    def mkdir(self, path, parents=False) -> FileInfo:
        """Create a directory (and its missing parents if ``parents``)."""
        obj = self._sb.client.request("POST", self._path("/mkdir"), query={
            "path": str(path), "parents": "true" if parents else None})
        return FileInfo.from_json(obj or {"path": str(path), "type": "dir"})


# ---- telemetry events -----------------------------------------------------------------

class EventStream:
    """The sandbox's telemetry events as they happen (``sandbox.events()``): an iterator of
    dicts, one per event (see docs/events.md), that ends when the sandbox does. Close it
    (or leave its ``with`` block) to stop watching."""

    def __init__(self, resp):
        self._resp = resp
        self._it = iter_sse(resp)

    def __iter__(self):
        return self

    def __next__(self) -> Dict[str, Any]:
        if self._resp is None:
            raise StopIteration
        try:
            _event, data = next(self._it)
        except BaseException:
            self.close()
            raise
        try:
            obj = json.loads(data)
        except ValueError:
            obj = {"data": data}
        return obj

    def close(self):
        if self._resp is not None:
            close(self._resp)
            self._resp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the sandbox ----------------------------------------------------------------------

class Sandbox:
    """A sandbox run by wardend.

    ``Sandbox(...)`` creates one (so does :meth:`create`); :meth:`connect` attaches to one
    that exists; :meth:`list` lists them. Used as a context manager it is destroyed when
    the block ends::

        with Sandbox(policy="default", ttl=600) as sb:
            print(sb.run("python3 -c 'print(6*7)'").stdout)

    Args:
        policy: a preset (``"default"``, ``"strict"``) or a policy stored in wardend.
        policy_yaml: an inline policy document instead of ``policy``.
        ttl: seconds before wardend destroys the sandbox (wardend's default: 3600).
        labels: ``{str: str}`` to find it again with ``Sandbox.list(labels=...)``.
        env: environment variables added for every command run in it.
        socket, url, token, timeout: where wardend is, see :class:`warden.Client`.
        client: an existing :class:`warden.Client` (instead of socket/url/token).

    Attributes:
        id, policy, state (``"running"`` or ``"paused"``), created_at, expires_at, labels,
        from_pool (whether it came from a pre-started pool), files (:class:`Files`),
        client (:class:`warden.Client`).

    Raises:
        BadRequest: an invalid field (the message names it).
        QuotaExceeded: too many sandboxes.
        ConnectionFailed: wardend is not reachable.
    """

    def __init__(self, policy="default", *, policy_yaml=None, ttl=None, labels=None,
                 env=None, socket=None, url=None, token=None, timeout=DEFAULT_TIMEOUT,
                 client=None):
        self.client = client or Client(socket=socket, url=url, token=token, timeout=timeout)
        body: Dict[str, Any] = {}
        if policy_yaml is not None:
            body["policy_yaml"] = policy_yaml
        else:
            body["policy"] = policy
        if ttl is not None:
            body["ttl"] = int(ttl)
        if labels:
            body["labels"] = {str(k): str(v) for k, v in labels.items()}
        if env:
            body["env"] = {str(k): str(v) for k, v in env.items()}
        self._set(self.client.request("POST", "/v1/sandboxes", json_body=body))

    @classmethod
    def create(cls, policy="default", **kwargs) -> "Sandbox":
        """Create a sandbox; the same as ``Sandbox(policy, **kwargs)``."""
        return cls(policy, **kwargs)

    @classmethod
    def connect(cls, sandbox_id, *, socket=None, url=None, token=None,
                timeout=DEFAULT_TIMEOUT, client=None) -> "Sandbox":
        """Attach to an existing sandbox by id. Raises NotFound."""
        client = client or Client(socket=socket, url=url, token=token, timeout=timeout)
        sid = urllib.parse.quote(str(sandbox_id), safe="")
        return cls._attach(client, client.request("GET", f"/v1/sandboxes/{sid}"))

    @classmethod
    def list(cls, *, labels=None, socket=None, url=None, token=None,
             timeout=DEFAULT_TIMEOUT, client=None) -> List["Sandbox"]:
        """The sandboxes wardend runs, or those carrying every label in ``labels``."""
        client = client or Client(socket=socket, url=url, token=token, timeout=timeout)
        query = [("label", f"{k}={v}") for k, v in (labels or {}).items()]
        obj = client.request("GET", "/v1/sandboxes", query=query)
        return [cls._attach(client, s) for s in obj.get("sandboxes", [])]

    @classmethod
    def _attach(cls, client, info):
        sb = cls.__new__(cls)
        sb.client = client
        sb._set(info)
        return sb

    def _set(self, info):
        if not isinstance(info, dict) or "id" not in info:
            raise WardenError(f"wardend answered without a sandbox: {info!r}")
        self.info = info
        self.id = info["id"]
        self.policy = info.get("policy")
        self.state = info.get("state")
        self.created_at = info.get("created_at")
        self.expires_at = info.get("expires_at")
        self.labels = info.get("labels") or {}
        self.from_pool = bool(info.get("from_pool"))
        self.files = Files(self)

    def __repr__(self):
        return f"<Sandbox {self.id} policy={self.policy!r} state={self.state!r}>"

    def _url(self, suffix=""):
        return f"/v1/sandboxes/{self.id}{suffix}"

    # ---- commands ---------------------------------------------------------------------

    def run(self, cmd: Command, *, env=None, workdir=None, stdin=None,
            timeout=None) -> Result:
        """Run a command to its end and return its output and status.

        Args:
            cmd: argv list, or a string run with ``sh -c``.
            env: variables added to the sandbox's environment for this command.
            workdir: absolute directory to run in.
            stdin: text (or UTF-8 bytes) fed to the command's standard input.
            timeout: seconds after which the command is killed (``Result.timed_out``).

        A non-zero exit is not an error: look at ``Result.exit_code``.
        """
        obj = self.client.request("POST", self._url("/exec"),
                                  json_body=_exec_body(cmd, env, workdir, stdin, timeout),
                                  timeout=_stream_timeout(self.client, timeout))
        return Result(stdout=obj.get("stdout", ""), stderr=obj.get("stderr", ""),
                      exit_code=obj.get("exit_code"), timed_out=bool(obj.get("timed_out")),
                      exec_id=obj.get("exec_id"), truncated=bool(obj.get("truncated")),
                      error=obj.get("error"))

    def exec(self, cmd: Command, *, env=None, workdir=None, stdin=None,
             timeout=None) -> Execution:
        """Start a command and stream its output: iterate over the returned
        :class:`Execution` for ``started``, ``stdout``, ``stderr`` and ``exit`` events as
        they happen. Arguments as :meth:`run`."""
        resp = self.client.open("POST", self._url("/exec"),
                                json_body=_exec_body(cmd, env, workdir, stdin, timeout),
                                accept="application/x-ndjson",
                                timeout=_stream_timeout(self.client, timeout))
        try:
            return Execution(self, resp)
        except BaseException:
            close(resp)
            raise

    # ---- lifecycle and observation ----------------------------------------------------

    def refresh(self) -> "Sandbox":
        """Re-read the sandbox's state from wardend. Raises NotFound once it is gone."""
        self._set(self.client.request("GET", self._url()))
        return self

    def pause(self) -> "Sandbox":
        """Freeze every process of the sandbox (cgroup freezer)."""
        self._set(self.client.request("POST", self._url("/pause")))
        return self

    def resume(self) -> "Sandbox":
        """Thaw a paused sandbox."""
        self._set(self.client.request("POST", self._url("/resume")))
        return self

    def stats(self) -> Dict[str, Any]:
        """What the sandbox uses now: memory_current, memory_peak, cpu_usec, pids, ..."""
        return self.client.request("GET", self._url("/stats"))

    def logs(self) -> List[Dict[str, Any]]:
        """The commands run in the sandbox: exec_id, cmd, exit_code, started_at, ended_at."""
        return self.client.request("GET", self._url("/logs")).get("execs", [])

    def events(self, timeout=None) -> EventStream:
        """Watch the sandbox's telemetry events as they happen (see :class:`EventStream`).
        ``timeout``: seconds to wait for the next event before raising ConnectionFailed
        (default: wait as long as the sandbox lives)."""
        return EventStream(self.client.open("GET", self._url("/events"),
                                            accept="text/event-stream", timeout=timeout))

    def destroy(self):
        """Kill every process of the sandbox and remove it. Raises NotFound if it is
        already gone."""
        self.client.request("DELETE", self._url())
        self.state = "destroyed"

    kill = destroy

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.destroy()
        except NotFound:
            pass

