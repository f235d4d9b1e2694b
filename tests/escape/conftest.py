"""Helpers for the escape suite: run one probe attempt outside the sandbox (as the runner's
user, directly on the host) and inside it (through `warden run`), and read what failed.

Every test shows the attempt succeeding outside (or, where success would harm the host,
reaching the kernel and being refused by it with the kernel's own error) and then failing
inside with the sandbox's refusal. The probe prints "FAILED: <what>: <text> [ERRNO]".

With --isolation vm (tests/conftest.py) the sandbox is a guest kernel of its own: an
attempt that only reaches that kernel (a system call the namespace backend's filter
refuses, a mount, a new namespace, the guest root's power over its own guest) says
nothing about the host there, and is skipped (not_in_vm) or left out (Escape.variants)
with the reason.
"""
import fcntl
import os
import re
import select
import signal
import subprocess
import termios
import time

import pytest

# Where the directory holding the probe is mounted inside sandboxes (read-only).
PROBE_DIR = "/opt/warden-probe"
PROBE_INSIDE = PROBE_DIR + "/probe"

SIGSYS_EXIT = 128 + signal.SIGSYS

_ERRNO = re.compile(r"^(.*) \[(E[A-Z0-9]+)\]$")


def output(r):
    return f"rc={r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def failure(r):
    """(what, errno name or None) of the probe's last "FAILED: what: text [ERRNO]" line,
    or None. The text (strerror's, or the probe's own) never holds ": "."""
    lines = [line for line in (r.stderr or "").splitlines() if line.startswith("FAILED: ")]
    if not lines:
        return None
    body = lines[-1][len("FAILED: "):].rstrip()
    m = _ERRNO.match(body)
    return (m.group(1) if m else body).rsplit(": ", 1)[0], m.group(2) if m else None


def assert_ok(r):
    assert r.returncode == 0, "expected the attempt to succeed\n" + output(r)


def assert_errno(r, *names, what=None):
    """The attempt failed (exit 1) with one of the errno names, at step `what` if given."""
    f = failure(r)
    assert r.returncode == 1 and f is not None, "expected the attempt to fail\n" + output(r)
    assert f[1] in names, f"expected {'/'.join(names)}, got {f[1]}\n" + output(r)
    if what is not None:
        assert f[0] == what, f"expected the failure at {what!r}, got {f[0]!r}\n" + output(r)


def assert_refused(r, message, what=None):
    """The attempt failed (exit 1) with a probe message (no errno) such as 'empty'."""
    f = failure(r)
    assert r.returncode == 1 and f is not None, "expected the attempt to fail\n" + output(r)
    assert message in r.stderr, f"expected {message!r}\n" + output(r)
    if what is not None:
        assert f[0] == what, output(r)


class Escape:
    """One runner (root or rootless) and the binaries it runs."""

    def __init__(self, runner, warden, probe, bindir, vm_image=None):
        self.runner = runner
        self.warden = warden
        self.probe = probe
        self.bindir = bindir
        self.vm_image = vm_image  # --isolation vm: each sandbox is a microVM
        self.vm = vm_image is not None

    def _ready(self, argv):
        """Before a sandbox: an attempt made outside may have changed what a guest's root
        image is built from (tests/conftest.py VmImage)."""
        if self.vm and self.warden in argv:
            self.vm_image.ensure()

    @property
    def mode(self):
        return self.runner.mode

    def variants(self, *opts_list, guest_root=True):
        """The option sets to make an attempt with, less those that mean nothing in a VM:
        --network host, which the vm backend refuses (a guest has no network device),
        and (guest_root) --user 0, the root of the guest kernel the attempt is made
        against, which owns that guest and nothing of the host (docs/vm.md)."""
        if not self.vm:
            return opts_list
        return [o for o in opts_list if "host" not in o and (not guest_root or "0" not in o)]

    def outside(self, *args, env=None, timeout=60, **kw):
        """The attempt directly on the host, as the runner's user."""
        return self.run([self.probe, *args], env=env, timeout=timeout, **kw)

    def inside_argv(self, *args, opts=(), probe=True):
        argv = [self.warden, "run", "-q", "-v", f"{self.bindir}:{PROBE_DIR}:ro", *opts, "--"]
        return argv + ([PROBE_INSIDE] if probe else []) + list(args)

    def inside(self, *args, opts=(), env=None, timeout=60, **kw):
        """The attempt in a fresh sandbox (default policy unless opts say otherwise)."""
        return self.run(self.inside_argv(*args, opts=opts), env=env, timeout=timeout, **kw)

    def run(self, argv, env=None, timeout=60, **kw):
        self._ready(argv)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.runner.prefix() + list(argv), capture_output=True,
                              text=True, timeout=timeout, env=self.runner.env(env), **kw)

    def popen(self, argv, **kw):
        self._ready(argv)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(self.runner.prefix() + list(argv), env=self.runner.env(),
                                **kw)

    def in_pty(self, argv, ctty=True, timeout=30):
        """Run argv in a new session with a new pseudo-terminal as its stdio and (ctty)
        as its controlling terminal, or (not ctty) as nobody's controlling terminal yet;
        returns a CompletedProcess whose stdout and stderr both hold everything written
        to the terminal."""
        self._ready(argv)
        master, slave = os.openpty()

        def take_terminal():
            os.setsid()
            if ctty:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        p = subprocess.Popen(self.runner.prefix() + list(argv), stdin=slave, stdout=slave,
                             stderr=slave, env=self.runner.env(), preexec_fn=take_terminal)
        os.close(slave)
        out = b""
        try:
            while True:
                ready, _, _ = select.select([master], [], [], timeout)
                if not ready:
                    p.kill()
                    break
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(master)
        rc = p.wait(timeout=timeout)
        text = out.decode(errors="replace").replace("\r\n", "\n")
        return subprocess.CompletedProcess(argv, rc, text, text)


@pytest.fixture
def esc(runner, warden, probe, bindir, vm_image):
    """Parametrised like `runner`: each test runs as root and rootless."""
    return Escape(runner, warden, probe, bindir, vm_image)


@pytest.fixture
def esc_root(root_runner, warden, probe, bindir, vm_image):
    """For attempts only host root can make outside (the test user is refused by the
    kernel's own permission check, with the same error the sandbox gives)."""
    return Escape(root_runner, warden, probe, bindir, vm_image)


@pytest.fixture(scope="session")
def landlock_abi(probe):
    """The Landlock ABI this kernel offers (0: none)."""
    r = subprocess.run([probe, "landlock_abi"], capture_output=True, text=True)
    return int(r.stdout) if r.returncode == 0 else 0


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


@pytest.fixture
def host_sleep(esc):
    """A process on the host that belongs to the runner's user: what a sandbox must not see,
    signal, trace or enter, while the same user outside can."""
    p = esc.popen(["sleep", "120"])
    deadline = time.monotonic() + 10
    while _comm(p.pid) != "sleep":  # until setpriv has exec'd it (and it is dumpable)
        assert time.monotonic() < deadline and p.poll() is None, "sleep did not start"
        time.sleep(0.005)
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def scratch(shared_tmp):
    """An empty directory the test user owns, for mount points and files on the host."""
    d = os.path.join(shared_tmp, "scratch")
    os.mkdir(d)
    os.chown(d, os.stat(shared_tmp).st_uid, os.stat(shared_tmp).st_gid)
    return d
