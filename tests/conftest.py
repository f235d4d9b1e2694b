"""Shared pytest fixtures: the warden binary, the probe, and running warden as root or as
an unprivileged user (rootless).

`--isolation vm` (or WARDEN_TEST_ISOLATION=vm) runs every `warden run` of the tests in a
microVM (docs/vm.md): the `warden` the tests get adds `--isolation vm` to `run`, and
tests marked `not_in_vm(reason)` are skipped with that reason, for what means nothing
when the sandbox is a guest kernel of its own."""
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


def pytest_addoption(parser):
    parser.addoption("--isolation", choices=("ns", "vm"),
                     default=os.environ.get("WARDEN_TEST_ISOLATION", "ns"),
                     help="the isolation of every `warden run` of the tests (default: ns, "
                          "or $WARDEN_TEST_ISOLATION)")


def pytest_runtest_setup(item):
    m = item.get_closest_marker("not_in_vm")
    if m and item.config.getoption("isolation") == "vm":
        pytest.skip(f"isolation vm: {m.args[0]}")


@pytest.fixture(scope="session")
def isolation(pytestconfig):
    """"ns" or "vm": what every `warden run` of this session uses."""
    return pytestconfig.getoption("isolation")


# With --isolation vm, what the tests run as `warden`: the binary (in bin/ beside it, so
# that its name stays warden) with --isolation vm after `run`; the tests' own options
# come later and win.
VM_WRAPPER = """#!/bin/sh
[ "$1" = run ] && shift && set -- run --isolation vm "$@"
exec "$(dirname "$0")/bin/warden" "$@"
"""


def _binary(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run `make build` first")
    return path


@pytest.fixture(scope="session")
def bindir(isolation):
    """A world-readable directory holding copies of warden and the probe (both static),
    so that an unprivileged user can run them wherever the checkout lives."""
    d = tempfile.mkdtemp(prefix="warden-test-bin-")
    os.chmod(d, 0o755)
    for name in ("warden", "tests/probe"):
        dst = os.path.join(d, os.path.basename(name))
        shutil.copy2(_binary(name), dst)
        os.chmod(dst, 0o755)
    if isolation == "vm":
        os.mkdir(os.path.join(d, "bin"), 0o755)
        os.rename(os.path.join(d, "warden"), os.path.join(d, "bin/warden"))
        with open(os.path.join(d, "warden"), "w") as f:
            f.write(VM_WRAPPER)
        os.chmod(os.path.join(d, "warden"), 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _host_dirs_state():
    """What the default policy's root image is keyed on (docs/vm.md): the host's system
    directories' identity and times, and dpkg's status file's."""
    state = {}
    for d in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
              "/var/lib/dpkg/status"):
        try:
            st = os.stat(d)
            state[d] = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            pass
    return state


class VmImage:
    """With --isolation vm, a guest of the default policy boots from an image of the
    host's system directories, built (minutes) the first time and again whenever their
    times change, which an attempt made outside can do (a file made in /etc or /usr):
    longer than any test waits for a sandbox. ensure() builds it ahead, when needed."""

    def __init__(self, warden):
        self.warden = warden
        self.state = None

    def ensure(self):
        state = _host_dirs_state()
        if state == self.state:
            return
        r = subprocess.run([self.warden, "run", "-q", "--", "true"], capture_output=True,
                           text=True, timeout=3600)
        if r.returncode != 0:
            pytest.exit(f"isolation vm: a guest of the default policy did not run: "
                        f"{r.stderr}", returncode=1)
        self.state = state


def vm_missing():
    """Why guests cannot run here, or None."""
    kernel_dir = os.environ.get("WARDEN_VM_DIR", "/var/cache/warden/vm")
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed (scripts/setup.sh)"
    for f in ("vmlinux", "modules.cpio", "kernel.txt"):
        if not os.path.exists(os.path.join(kernel_dir, f)):
            return f"no guest kernel in {kernel_dir} (scripts/setup.sh as root)"
    return None


@pytest.fixture(scope="session")
def vm_image(isolation, warden):
    """The VmImage of this session (None unless --isolation vm)."""
    return VmImage(warden) if isolation == "vm" else None


@pytest.fixture(autouse=True)
def vm_image_ready(request, isolation):
    if isolation == "vm":
        why = vm_missing()
        if why:
            pytest.skip(f"isolation vm: {why}")
        request.getfixturevalue("vm_image").ensure()


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
