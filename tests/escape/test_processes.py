"""Processes: host processes are invisible and out of reach; the sandbox's init (pid 1)
cannot be traced, read, robbed of its descriptors, environment or command line, or
killed; the strict preset closes ptrace even within the sandbox; no host descriptor
leaks in; the host's System V IPC objects are out of sight.

The host counterpart of every attempt is made on a `sleep` of the runner's own user, which
the same user may see, signal, trace and read on the host.
"""
import os
import signal

import pytest

from conftest import assert_errno, assert_ok, assert_refused, output


def test_host_process_invisible(esc, host_sleep):
    pid = str(host_sleep.pid)
    assert_ok(esc.outside("stat", f"/proc/{pid}"))
    assert_errno(esc.inside("stat", f"/proc/{pid}"), "ENOENT", what=f"/proc/{pid}")


def test_signal_host_process(esc, host_sleep):
    pid = str(host_sleep.pid)
    assert_ok(esc.outside("kill", pid, str(int(signal.SIGCONT))))
    for opts in esc.variants([], ["--network", "host"], ["--user", "0"], guest_root=False):
        r = esc.inside("kill", pid, str(int(signal.SIGKILL)), opts=opts)
        assert_errno(r, "ESRCH", what="kill")
    assert host_sleep.poll() is None, "the host process was killed from inside"


def test_ptrace_host_process(esc, host_sleep):
    pid = str(host_sleep.pid)
    assert_ok(esc.outside("ptrace_attach", pid))
    assert_errno(esc.inside("ptrace_attach", pid), "ESRCH", what="ptrace(PTRACE_SEIZE)")


def test_ptrace_init(esc, host_sleep):
    """Tracing pid 1 would let the sandbox act with init's capabilities (CAP_SETUID...)."""
    assert_ok(esc.outside("ptrace_attach", str(host_sleep.pid)))
    for opts in esc.variants([], ["--user", "0"]):
        r = esc.inside("ptrace_attach", "1", opts=opts)
        assert_errno(r, "EPERM", what="ptrace(PTRACE_SEIZE)")


def test_read_init_memory(esc, host_sleep):
    pid = host_sleep.pid
    assert_ok(esc.outside("open", f"/proc/{pid}/mem", "r"))
    for opts in esc.variants([], ["--user", "0"]):
        assert_errno(esc.inside("open", "/proc/1/mem", "r", opts=opts), "EACCES",
                     what="/proc/1/mem")


def test_init_root_and_descriptors(esc, host_sleep):
    """/proc/1/root, /proc/1/cwd and /proc/1/fd/3 (init's socket to the supervisor)."""
    pid = host_sleep.pid
    assert_ok(esc.outside("open", f"/proc/{pid}/root", "r"))
    assert_ok(esc.outside("open", f"/proc/{pid}/fd/0", "r"))
    for path in ("/proc/1/root", "/proc/1/cwd", "/proc/1/fd/3"):
        assert_errno(esc.inside("open", path, "r"), "EACCES", what=path)


def test_steal_init_socket(esc, host_sleep):
    """pidfd_getfd copies a descriptor out of another process: init's fd 3 is its socket
    to the supervisor on the host side."""
    assert_ok(esc.outside("pidfd_getfd", str(host_sleep.pid), "0"))
    for opts in esc.variants([], ["--user", "0"]):
        assert_errno(esc.inside("pidfd_getfd", "1", "3", opts=opts), "EPERM",
                     what="pidfd_getfd")


def test_kill_init(esc, host_sleep):
    """SIGKILL to a process of one's own user kills it on the host. Inside, init either
    refuses the signal (root mode: it runs as uid 0 of the sandbox, the agent does not) or
    shares the agent's uid (rootless, --user 0) and the kernel drops the signal, as it
    does for every signal a namespace's init has no handler for. Either way init lives:
    the probe, still running 100 ms later, reports normally, which it could not if pid 1
    had died (the whole pid namespace dies with it)."""
    assert_ok(esc.outside("kill", str(host_sleep.pid), str(int(signal.SIGKILL))))
    assert host_sleep.wait(timeout=10) == -signal.SIGKILL
    r = esc.inside("kill", "1", str(int(signal.SIGKILL)), "100")
    if esc.mode == "root" or esc.vm:  # a guest's init (the agent) is the guest's root
        assert_errno(r, "EPERM", what="kill")
    else:
        assert_ok(r)
        assert r.stdout == "signal sent\n", output(r)
    r = esc.inside("kill", "1", str(int(signal.SIGKILL)), "100", opts=["--user", "0"])
    assert_ok(r)
    assert r.stdout == "signal sent\n", output(r)


@pytest.mark.not_in_vm("the strict preset's ptrace: false is a rule of the namespace "
                       "backend's filter; in a guest ptrace reaches only the guest kernel")
def test_ptrace_strict_policy(esc):
    """ptrace within the sandbox: allowed by the default policy (debuggers work), refused
    by the strict preset (security.ptrace: false), together with process_vm_readv."""
    assert_ok(esc.outside("ptrace_child"))
    assert_ok(esc.inside("ptrace_child"))
    r = esc.inside("ptrace_child", opts=["--policy", "strict"])
    assert_errno(r, "EPERM", what="ptrace(PTRACE_SEIZE)")


def test_inherited_descriptor(esc, shared_tmp):
    """A descriptor warden's caller holds (here: an open host file) never crosses into the
    sandbox; only stdio does."""
    path = os.path.join(shared_tmp, "host-secret")
    with open(path, "w") as f:
        f.write("host secret\n")
    os.chmod(path, 0o644)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert_ok(esc.outside("fd_read", str(fd), pass_fds=(fd,)))
        r = esc.run(esc.inside_argv("fd_read", str(fd)), pass_fds=(fd,))
        assert_errno(r, "EBADF", what="read")
    finally:
        os.close(fd)


def test_init_environment(esc, host_sleep):
    """init is a fork of warden and holds warden's own environment (the caller's secrets
    included): /proc/1/environ must not open inside."""
    assert_ok(esc.outside("read", f"/proc/{host_sleep.pid}/environ"))
    env = {"SECRET_TOKEN": "s3cr3t-warden-escape"}
    for opts in esc.variants([], ["--user", "0"]):
        r = esc.inside("read", "/proc/1/environ", opts=opts, env=env)
        assert_errno(r, "EACCES", what="/proc/1/environ")


def test_init_command_line(esc, host_sleep, shared_tmp):
    """The command line of another process of the same user is readable on the host
    (/proc/PID/cmdline needs no ptrace access). init's would be warden's own: host paths
    (here a volume's source directory) must not show through it."""
    assert_ok(esc.outside("find", f"/proc/{host_sleep.pid}/cmdline", "sleep"))
    marker = os.path.join(shared_tmp, "host-only-directory-name")
    os.mkdir(marker)
    r = esc.inside("find", "/proc/1/cmdline", marker, opts=["-v", f"{marker}:/data:ro"])
    assert_refused(r, "text not found", what="/proc/1/cmdline")


def test_host_sysv_ipc(esc):
    """A System V shared memory segment of the host (IPC namespaces have no file
    permissions to fall back on: any process with the key may attach where the mode
    allows)."""
    key = hex(0x57000000 + os.getpid() % 0xffff)
    assert_ok(esc.outside("shm", key, "create"))
    try:
        assert_ok(esc.outside("shm", key, "get"))
        for opts in esc.variants([], ["--network", "host"], ["--user", "0"],
                                 guest_root=False):
            assert_errno(esc.inside("shm", key, "get", opts=opts), "ENOENT", what="shmget")
    finally:
        esc.outside("shm", key, "rm")
