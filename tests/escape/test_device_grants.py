"""Granted devices (--device): what a grant gives is all it gives. Stand-in character
nodes are made by the test in a major number for local use that no driver registered
here, so a successful open ends at the missing driver (ENXIO: the kernel let it through);
the device cgroup refuses with EPERM, Landlock with EACCES, an absent node is ENOENT.
"""
import os

import pytest

from conftest import assert_errno

pytestmark = pytest.mark.not_in_vm("devices are not passed into a guest: --device is "
                                   "refused (docs/vm.md)")


@pytest.fixture(scope="module")
def pair(stand_in_devices):
    return {"granted": stand_in_devices["a"], "sibling": stand_in_devices["b"],
            "major": stand_in_devices["major"]}


def test_sibling_of_granted_node(esc, pair):
    """The sibling's open reaches the kernel's driver lookup outside; inside, only the
    granted node exists."""
    assert_errno(esc.outside("open", pair["sibling"], "r"), "ENXIO")
    r = esc.inside("open", pair["sibling"], "r", opts=["--device", pair["granted"]])
    assert_errno(r, "ENOENT", what=pair["sibling"])
    r = esc.inside("open", pair["granted"], "r", opts=["--device", pair["granted"]])
    assert_errno(r, "ENXIO", what=pair["granted"])


def test_write_to_read_only_grant(esc, pair):
    """Outside, the node (mode 0666) opens for writing as far as the driver; inside, a
    read-only grant refuses it. As root the device cgroup answers first (EPERM: it is
    checked at permission time, Landlock at open time); rootless, where there is no
    device cgroup, Landlock refuses by path (EACCES)."""
    g = pair["granted"]
    assert_errno(esc.outside("open", g, "w"), "ENXIO")
    r = esc.inside("open", g, "w", opts=["--device", g + ":r", "--user", "0"])
    assert_errno(r, "EPERM" if esc.mode == "root" else "EACCES", what=g)


def test_mknod_with_granted_numbers(esc_root, pair, scratch):
    """Even a grant with m (mknod) does not let the sandbox make the node elsewhere: the
    user namespace and seccomp refuse mknod before the device cgroup is asked."""
    node = os.path.join(scratch, "copy")
    r = esc_root.outside("--isolate", "--tmpfs", scratch, "mknod", node, "char",
                         str(pair["major"]), "0")
    assert r.returncode == 0, r.stderr
    r = esc_root.inside("mknod", "/tmp/copy", "char", str(pair["major"]), "0",
                        opts=["--device", pair["granted"] + ":rwm", "--user", "0"])
    assert_errno(r, "EPERM", what="mknod")
