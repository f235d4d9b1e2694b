"""--rootfs: an unpacked image as the root, an ephemeral writable layer over it."""
import os
import shutil
import tempfile

import pytest

BUSYBOX = "/bin/busybox"


def _make_image(owner):
    root = tempfile.mkdtemp(prefix="warden-image-")
    os.chmod(root, 0o755)
    for d in ("bin", "etc", "tmp", "var/tmp", "srv"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin/busybox"))
    for applet in ("sh", "ls", "cat", "id", "echo", "touch", "stat", "mkdir", "rm", "env",
                   "df", "tail"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nold:x:1000:1000::/home/old:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    with open(os.path.join(root, "srv/data"), "w") as f:
        f.write("image data\n")
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
            os.lchown(n, owner.pw_uid if owner else 0, owner.pw_gid if owner else 0)
    return root


@pytest.fixture(scope="module")
def images(test_user):
    """A root-owned image, and one owned by the rootless test user (an unprivileged user
    can only use an image it owns)."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (scripts/setup.sh installs it)")
    made = {"root": _make_image(None), "rootless": _make_image(test_user)}
    yield made
    for root in made.values():
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def image(images, request):
    runner = request.getfixturevalue("runner") if "runner" in request.fixturenames else None
    return images[runner.mode if runner else "root"]


def snapshot(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out.append((p, st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns))
    return sorted(out)


def test_runs_the_image_not_the_host(runner, warden, image):
    r = runner.run([warden, "run", "-q", "--rootfs", image, "--", "sh", "-c",
                    "ls /; test -e /usr && echo host-usr-visible; cat /srv/data"])
    assert r.returncode == 0, r.stderr
    entries = r.stdout.split("\n")
    assert "host-usr-visible" not in entries
    assert "image data" in entries
    for d in ("bin", "dev", "etc", "home", "proc", "srv", "tmp", "var"):
        assert d in entries


def test_image_ownership_inside(root_runner, warden, image):
    """Root mode idmaps the image: files owned by host root appear owned by root."""
    r = root_runner.run([warden, "run", "-q", "--rootfs", image, "--", "stat", "-c", "%u %g",
                         "/srv/data", "/bin/busybox"])
    assert r.stdout == "0 0\n0 0\n"


def test_writes_are_ephemeral(runner, warden, image):
    before = snapshot(image)
    r = runner.run([warden, "run", "-q", "--user", "root" if runner.mode == "root" else "agent",
                    "--rootfs", image, "--", "sh", "-c",
                    "echo changed > /tmp/new && cat /tmp/new && echo x > $HOME/f && "
                    "rm -f /srv/data 2>/dev/null; echo done"])
    assert "changed\n" in r.stdout and r.stdout.endswith("done\n"), r
    assert snapshot(image) == before
    r = runner.run([warden, "run", "-q", "--rootfs", image, "--", "cat", "/srv/data"])
    assert r.stdout == "image data\n"


def test_sandbox_user_in_image_passwd(runner, warden, image):
    r = runner.run([warden, "run", "-q", "--rootfs", image, "--", "sh", "-c",
                    "id -un; cat /etc/passwd"])
    lines = r.stdout.strip().split("\n")
    assert lines[0] == "agent"
    assert "root:x:0:0:root:/root:/bin/sh" in lines
    assert "agent:x:1000:1000:agent:/home/agent:/bin/sh" in lines
    assert not any(line.startswith("old:") for line in lines)


def test_tmp_is_writable_and_bounded(runner, warden, image):
    r = runner.run([warden, "run", "-q", "--rootfs", image, "--tmp-size", "16M", "--", "sh",
                    "-c", "stat -c %a /tmp; df -k / | tail -1"])
    lines = r.stdout.split("\n")
    assert lines[0] == "1777"
    assert lines[1].split()[1] == str(16 * 1024)


def test_volume_into_image(runner, warden, image, shared_tmp):
    os.chown(shared_tmp, runner.uid, runner.uid)
    r = runner.run([warden, "run", "-q", "--rootfs", image, "-v", f"{shared_tmp}:/work",
                    "-w", "/work", "--", "sh", "-c", "echo hi > out && cat out"])
    assert r.stdout == "hi\n", r.stderr
    st = os.stat(os.path.join(shared_tmp, "out"))
    assert st.st_uid == runner.uid


def test_rootless_with_a_root_owned_image(rootless_runner, warden, images):
    r = rootless_runner.run([warden, "run", "-q", "--rootfs", images["root"], "--", "true"])
    assert r.returncode == 125
    assert "an image used without root must be owned by the user running warden" in r.stderr


def test_rootfs_must_be_a_directory(root_runner, warden, image):
    r = root_runner.run([warden, "run", "--rootfs", os.path.join(image, "srv/data"), "--",
                         "true"])
    assert r.returncode == 125
    assert r.stderr.endswith("srv/data: not a directory\n")
