"""Shared pytest fixtures: the warden binary, the probe, and running warden as root or as
an unprivileged user (rootless)."""
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
TEST_USER = "warden-test"


def _binary(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `make build` first")
    return path


@pytest.fixture(scope="session")
def bindir():
    """A world-readable directory holding copies of warden and the probe (both static),
    so that an unprivileged user can run them wherever the checkout lives."""
    d = tempfile.mkdtemp(prefix="warden-test-bin-")
    os.chmod(d, 0o755)
    for name in ("warden", "tests/probe"):
        dst = os.path.join(d, os.path.basename(name))
        shutil.copy2(_binary(name), dst)
        os.chmod(dst, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def warden(bindir):
    return os.path.join(bindir, "warden")


@pytest.fixture(scope="session")
def probe(bindir):
    return os.path.join(bindir, "probe")


@pytest.fixture(scope="session")
def test_user():
    """An unprivileged account for rootless runs (created once if missing)."""
    if os.geteuid() != 0:
        pytest.skip("creating the rootless test user needs root")
    try:
        pw = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER],
                       check=True)
        pw = pwd.getpwnam(TEST_USER)
    return pw


class Runner:
    """Runs commands as root or as the unprivileged test user."""

    def __init__(self, mode, user):
        self.mode = mode
        self.user = user

    @property
    def uid(self):
        return 0 if self.mode == "root" else self.user.pw_uid

    def prefix(self):
        if self.mode == "root":
            return []
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                "--clear-groups", "--"]

    def env(self, extra=None):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
        if self.mode == "root":
            env["HOME"] = "/root"
        else:
            env["HOME"] = self.user.pw_dir
            env["USER"] = self.user.pw_name
        env.update(extra or {})
        return env

    def run(self, argv, timeout=60, input=None, env=None, check=False, cwd=None):
        return subprocess.run(self.prefix() + list(argv), capture_output=True, text=True,
                              timeout=timeout, input=input, env=self.env(env), check=check,
                              cwd=cwd)


@pytest.fixture(params=["root", "rootless"])
def runner(request, test_user):
    """Parametrised: each test using it runs once as root and once rootless."""
    return Runner(request.param, test_user)


@pytest.fixture
def root_runner(test_user):
    return Runner("root", test_user)


@pytest.fixture
def rootless_runner(test_user):
    return Runner("rootless", test_user)


@pytest.fixture
def shared_tmp(test_user):
    """A temporary directory that the rootless test user owns (and root can use)."""
    d = tempfile.mkdtemp(prefix="warden-test-")
    os.chown(d, test_user.pw_uid, test_user.pw_gid)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _free_char_major():
    """A character major in the kernel's range for local use (240-254) that no driver has
    registered here: nodes made with it exist, but opening one ends at the missing driver
    (ENXIO) once every other check let it through."""
    used = set()
    with open("/proc/devices") as f:
        for line in f:
            if line.strip() == "Block devices:":
                break
            if line.split() and line.split()[0].isdigit():
                used.add(int(line.split()[0]))
    for major in range(240, 255):
        if major not in used:
            return major
    pytest.skip("no free character major in 240-254")


@pytest.fixture(scope="module")
def stand_in_devices():
    """Two stand-in character nodes, a (minor 0) and b (minor 1), in a fresh directory
    under /dev (only nodes under /dev can be granted), mode 0666 so that only warden's
    layers decide. A dict: a, b, dir, major."""
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    major = _free_char_major()
    d = tempfile.mkdtemp(prefix="warden-test-", dir="/dev")
    os.chmod(d, 0o755)
    nodes = {"dir": d, "major": major}
    for name, minor in (("a", 0), ("b", 1)):
        nodes[name] = os.path.join(d, name)
        os.mknod(nodes[name], 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(nodes[name], 0o666)
    yield nodes
    shutil.rmtree(d, ignore_errors=True)


def sandbox_pids(supervisor_pid, tries=400):
    """The host pids of init and of the command of a running `warden run` (its supervisor's
    child and grandchild), once both exist."""
    import time
    for _ in range(tries):
        kids = subprocess.run(["pgrep", "-P", str(supervisor_pid)], capture_output=True,
                              text=True).stdout.split()
        if kids:
            grandkids = subprocess.run(["pgrep", "-P", kids[0]], capture_output=True,
                                       text=True).stdout.split()
            if grandkids:
                return int(kids[0]), int(grandkids[0])
        time.sleep(0.025)
    raise AssertionError("the sandbox did not start")
