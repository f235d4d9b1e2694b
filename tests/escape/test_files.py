"""Files: the host's secrets (the caller's ssh key, /etc/shadow, its environment) stay
outside; system directories and read-only volumes cannot be written; nothing a sandbox
writes survives into the next one; an image's symlinks cannot steer warden's own setup
onto the host.
"""
import os
import shutil
import stat
import subprocess
import uuid

import pytest

from conftest import PROBE_INSIDE, assert_errno, assert_ok, assert_refused, output


@pytest.fixture
def ssh_key(esc):
    """~/.ssh/id_rsa of the runner's user: a fake one, unless one exists already (then it
    is only read, never changed or removed)."""
    home = "/root" if esc.mode == "root" else esc.runner.user.pw_dir
    uid, gid = (0, 0) if esc.mode == "root" else (esc.runner.user.pw_uid,
                                                   esc.runner.user.pw_gid)
    ssh_dir = os.path.join(home, ".ssh")
    key = os.path.join(ssh_dir, "id_rsa")
    made_dir = not os.path.exists(ssh_dir)
    made_key = not os.path.exists(key)
    if made_dir:
        os.makedirs(ssh_dir, mode=0o700)
        os.chown(ssh_dir, uid, gid)
    if made_key:
        with open(key, "w") as f:
            f.write("-----BEGIN OPENSSH PRIVATE KEY-----\nwarden escape suite fake\n")
        os.chown(key, uid, gid)
        os.chmod(key, 0o600)
    yield key
    if made_key:
        os.unlink(key)
    if made_dir:
        os.rmdir(ssh_dir)


def test_read_callers_ssh_key(esc, ssh_key):
    assert_ok(esc.outside("read", ssh_key))
    assert_errno(esc.inside("read", ssh_key), "ENOENT", what=ssh_key)
    # nor under the sandbox's own home, nor as uid 0 inside
    assert_errno(esc.inside("read", "/home/agent/.ssh/id_rsa"), "ENOENT")
    assert_errno(esc.inside("read", ssh_key, opts=["--user", "0"]), "ENOENT", what=ssh_key)


def test_environment_leak(esc):
    """warden's own environment is not the sandbox's: only what -e names crosses."""
    env = {"SECRET_TOKEN": "s3cr3t-warden-escape"}
    r = esc.outside("getenv", "SECRET_TOKEN", env=env)
    assert_ok(r)
    assert r.stdout == "s3cr3t-warden-escape\n"
    r = esc.inside("getenv", "SECRET_TOKEN", env=env)
    assert_refused(r, "not set", what="SECRET_TOKEN")
    r = esc.inside("getenv", "HOME", env=env)  # the sandbox's home, not the caller's
    assert_ok(r)
    assert r.stdout != esc.runner.env()["HOME"] + "\n", output(r)
    # control: the variable does cross when asked for
    r = esc.inside("getenv", "SECRET_TOKEN", opts=["-e", "SECRET_TOKEN"], env=env)
    assert_ok(r)
    assert r.stdout == "s3cr3t-warden-escape\n", output(r)


@pytest.mark.parametrize("directory", ["/usr", "/etc", "/usr/local/bin", "/"])
def test_write_system_directory(esc_root, directory):
    """Host root creates a file there (removed at once); inside, uid 0 included, the
    system directories are read-only binds and / is a read-only tmpfs."""
    name = f"warden-escape-{uuid.uuid4().hex[:8]}"
    path = os.path.join(directory, name)
    try:
        assert_ok(esc_root.outside("write", path))
    finally:
        if os.path.exists(path):
            os.unlink(path)
    for opts in ([], ["--user", "0"]):
        assert_errno(esc_root.inside("write", path, opts=opts), "EROFS", what=path)
    assert not os.path.exists(path)


def test_overwrite_system_file(esc_root):
    """Truncating an existing host file (/etc/hostname): host root opens it for writing
    (nothing is written); inside it is read-only, and not even uid 0 inside is its
    owner."""
    assert_ok(esc_root.outside("open", "/etc/hostname", "w"))
    for opts in ([], ["--user", "0"]):
        r = esc_root.inside("open", "/etc/hostname", "w", opts=opts)
        assert_errno(r, "EROFS", "EACCES", what="/etc/hostname")


def test_read_only_volume(esc, shared_tmp):
    """A directory the caller may write, bound in read-only, stays read-only inside."""
    vol = os.path.join(shared_tmp, "vol")
    os.mkdir(vol)
    os.chown(vol, esc.runner.uid, esc.runner.uid if esc.mode == "root" else
             esc.runner.user.pw_gid)
    assert_ok(esc.outside("write", os.path.join(vol, "outside")))
    for opts in ([], ["--user", "0"]):
        r = esc.inside("write", "/data/inside", opts=["-v", f"{vol}:/data:ro", *opts])
        assert_errno(r, "EROFS", what="/data/inside")
    assert sorted(os.listdir(vol)) == ["outside"]


def test_read_shadow(esc_root):
    """/etc is the host's, read-only: /etc/shadow is there, but host root owns it, and
    nothing inside is host root (uid 0 inside maps to an unprivileged host id)."""
    assert_ok(esc_root.outside("read", "/etc/shadow"))
    # A guest's image of /etc leaves out what the host's others cannot read (docs/vm.md).
    refused = "ENOENT" if esc_root.vm else "EACCES"
    for opts in ([], ["--user", "0"]):
        assert_errno(esc_root.inside("read", "/etc/shadow", opts=opts), refused,
                     what="/etc/shadow")


RESIDUE = ["/tmp", "/var/tmp", "/dev/shm", "/home/agent"]


def test_residue_between_sandboxes(esc, shared_tmp):
    """On the host a file written by one process is there for the next; a sandbox's
    writable places (/tmp, /var/tmp, /dev/shm, home) start empty every time."""
    name = f"warden-residue-{uuid.uuid4().hex[:8]}"
    for host_dir in (shared_tmp, "/dev/shm"):
        path = os.path.join(host_dir, name)
        try:
            assert_ok(esc.outside("write", path))
            assert_ok(esc.outside("stat", path))
        finally:
            if os.path.exists(path):
                os.unlink(path)
    for d in RESIDUE:
        assert_ok(esc.inside("write", f"{d}/{name}"))
    for d in RESIDUE:
        path = f"{d}/{name}"
        assert_errno(esc.inside("stat", path), "ENOENT", what=path)
    for d in RESIDUE[:3]:
        assert not os.path.exists(f"{d}/{name}"), f"{d}/{name} landed on the host"


def make_rootfs(base, esc, etc=True):
    """A tiny image: busybox (static) as /bin/busybox and /bin/sh, an /etc of its own."""
    root = os.path.join(base, "rootfs")
    os.makedirs(os.path.join(root, "bin"))
    if etc:
        os.makedirs(os.path.join(root, "etc"))
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    os.symlink("busybox", os.path.join(root, "bin", "sh"))
    uid, gid = (0, 0) if esc.mode == "root" else (esc.runner.uid, esc.runner.user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(base):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
            os.lchown(n, uid, gid)
    return root


@pytest.fixture
def busybox():
    if not os.path.exists("/bin/busybox"):
        pytest.skip("needs /bin/busybox (busybox-static) to build an image")


def test_rootfs_home_symlink_to_etc(esc, shared_tmp, busybox):
    """An image whose /home is a symlink to /etc: followed on the host it leads to the
    host's /etc; warden must create the sandbox's home (/home/agent) inside the image."""
    root = make_rootfs(shared_tmp, esc)
    os.symlink("/etc", os.path.join(root, "home"))
    assert_ok(esc.outside("stat", os.path.join(root, "home", "hostname")))
    before = sorted(os.listdir("/etc"))
    r = esc.run([esc.warden, "run", "-q", "--rootfs", root, "--", "/bin/busybox", "sh", "-c",
                 "echo x > /home/agent/escape && ls /etc/agent"])
    assert sorted(os.listdir("/etc")) == before, "warden changed the host's /etc"
    assert not os.path.exists("/etc/agent")
    assert r.returncode == 0, output(r)  # and the image still works: /etc/agent is its own
    assert "escape" in r.stdout


@pytest.mark.parametrize("link", ["home", "tmp", "etc", "var", "dev", "proc", "opt"])
def test_rootfs_symlink_to_host_directory(esc, shared_tmp, busybox, link):
    """An image whose /<link> points at a host directory by absolute path. On the host the
    link leads there (a file written through it lands in the victim directory). warden
    resolves every path inside the image; whatever it makes of such an image (it may
    refuse it), nothing may appear in the victim directory."""
    victim = os.path.join(shared_tmp, "victim")
    os.makedirs(os.path.join(victim, link))
    root = make_rootfs(shared_tmp, esc, etc=link != "etc")
    os.symlink(os.path.join(victim, link), os.path.join(root, link))
    os.chmod(victim, 0o777)
    os.chmod(os.path.join(victim, link), 0o777)

    probe_path = os.path.join(root, link, "through-link")
    assert_ok(esc.outside("write", probe_path))
    assert os.path.exists(os.path.join(victim, link, "through-link"))
    os.unlink(os.path.join(victim, link, "through-link"))

    r = esc.run([esc.warden, "run", "-q", "--rootfs", root, "--", "/bin/busybox", "sh", "-c",
                 f"echo x > /{link}/from-inside"])
    found = [os.path.join(d, n) for d, ds, ns in os.walk(victim) for n in ds + ns]
    assert found == [os.path.join(victim, link)], \
        f"warden wrote into the host directory: {found}\n" + output(r)


def test_rootfs_image_unchanged(esc, shared_tmp, busybox):
    """With --rootfs the image is the lower layer of an overlay whose upper layer is the
    sandbox's tmpfs: the sandbox may change its root, the image on the host never
    changes, though its owner can write it on the host."""
    root = make_rootfs(shared_tmp, esc)
    assert_ok(esc.outside("write", os.path.join(root, "etc", "from-outside")))
    os.unlink(os.path.join(root, "etc", "from-outside"))

    def tree():
        return sorted((os.path.relpath(os.path.join(d, n), root), os.lstat(os.path.join(d, n))
                       .st_size) for d, ds, ns in os.walk(root) for n in ds + ns)

    before = tree()
    r = esc.run([esc.warden, "run", "-q", "--rootfs", root, "--user", "0", "--",
                 "/bin/busybox", "sh", "-c",
                 "echo x > /bin/new && echo x > /etc/new && rm /bin/sh && "
                 "busybox mkdir /opt && busybox chmod 4755 /bin/busybox && echo done"])
    assert r.stdout.endswith("done\n"), output(r)
    assert tree() == before, "the image changed on the host"


def test_setuid_file_through_volume(esc, shared_tmp, test_user):
    """Host root can make a root-owned setuid copy of a program, which gives any host user
    who runs it euid 0. The sandbox, which is never host root, must not be able to leave
    such a file on the host through a read-write volume (files it creates there belong
    to the volume's owner: root for a root-owned directory; rootless, the calling user,
    whose identity a setuid file would hand to every other user)."""
    vol = os.path.join(shared_tmp, "project")
    os.mkdir(vol)
    owner = (0, 0) if esc.mode == "root" else (test_user.pw_uid, test_user.pw_gid)
    os.chown(vol, *owner)
    other = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    if esc.mode == "root":
        made = os.path.join(vol, "made-by-host-root")
        assert_ok(esc.outside("plant_suid", esc.probe, made))
        r = subprocess.run([*other, made, "euid"], capture_output=True, text=True)
        assert_ok(r)  # the danger: an unprivileged host user runs it as root
        os.unlink(made)

    r = esc.inside("plant_suid", PROBE_INSIDE, "/data/planted", opts=["-v", f"{vol}:/data"])
    if not esc.vm:  # a guest's kernel lets the file's owner set the bit in the guest
        assert_errno(r, "EPERM", what="fchmod")
    planted = os.path.join(vol, "planted")
    st = os.stat(planted)
    r = subprocess.run([*other, planted, "euid"], capture_output=True, text=True)
    assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), \
        (f"setuid/setgid file owned by host uid {st.st_uid} left on the host; run by "
         f"nobody it says: {r.stdout.strip()}")
