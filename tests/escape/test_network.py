"""Network: services on the host's loopback (TCP, abstract and path unix sockets) are out of
reach, with the default private network namespace and also with --network host, where
Landlock alone must refuse TCP connect/bind (ABI 4+) and abstract sockets (ABI 6+); socket
families and types that are kernel attack surface cannot even be created.
"""
import os
import socket
import subprocess
import uuid

import pytest

from conftest import assert_errno, assert_ok, output

NO_HOST_NETWORK = "a guest has no network device: --network host is refused (docs/vm.md)"


@pytest.fixture
def tcp_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tcp_to_host_loopback(esc, tcp_server, landlock_abi):
    port = str(tcp_server)
    assert_ok(esc.outside("tcp_connect", "127.0.0.1", port))
    # own network namespace: nothing listens on its loopback (and Landlock refuses first;
    # a guest has a loopback of its own and no Landlock)
    expected = "EACCES" if landlock_abi >= 4 and not esc.vm else "ECONNREFUSED"
    assert_errno(esc.inside("tcp_connect", "127.0.0.1", port), expected, what="connect")


@pytest.mark.not_in_vm(NO_HOST_NETWORK)
def test_tcp_to_host_loopback_network_host(esc, tcp_server, landlock_abi):
    """--network host shares the host's network namespace: only Landlock stands between
    the sandbox and the host's loopback services."""
    if landlock_abi < 4:
        pytest.skip(f"Landlock ABI {landlock_abi} has no TCP rules (needs 4)")
    port = str(tcp_server)
    assert_ok(esc.outside("tcp_connect", "127.0.0.1", port))
    r = esc.inside("tcp_connect", "127.0.0.1", port, opts=["--network", "host"])
    assert_errno(r, "EACCES", what="connect")


@pytest.mark.not_in_vm(NO_HOST_NETWORK)
def test_tcp_listen_network_host(esc, landlock_abi):
    """Listening on a host port (to serve the host, or to catch its connections)."""
    if landlock_abi < 4:
        pytest.skip(f"Landlock ABI {landlock_abi} has no TCP rules (needs 4)")
    port = str(free_port())
    assert_ok(esc.outside("tcp_bind", "127.0.0.1", port))
    r = esc.inside("tcp_bind", "127.0.0.1", port, opts=["--network", "host"])
    assert_errno(r, "EACCES", what="bind")


@pytest.fixture
def host_network_policy(shared_tmp):
    """network.mode host with the TCP port lists given explicitly (empty)."""
    path = os.path.join(shared_tmp, "host-network.yaml")
    with open(path, "w") as f:
        f.write("version: 1\nname: host-network\nnetwork:\n  mode: host\n"
                "  tcp_bind: []\n  tcp_connect: []\n")
    os.chmod(path, 0o644)
    return path


@pytest.mark.not_in_vm(NO_HOST_NETWORK)
def test_tcp_host_network_without_ports(esc, tcp_server, host_network_policy, landlock_abi):
    """The host's network with no TCP port granted: Landlock refuses connect and bind."""
    if landlock_abi < 4:
        pytest.skip(f"Landlock ABI {landlock_abi} has no TCP rules (needs 4)")
    port, free = str(tcp_server), str(free_port())
    assert_ok(esc.outside("tcp_connect", "127.0.0.1", port))
    assert_ok(esc.outside("tcp_bind", "127.0.0.1", free))
    opts = ["--policy", host_network_policy]
    r = esc.inside("tcp_connect", "127.0.0.1", port, opts=opts)
    assert_errno(r, "EACCES", what="connect")
    r = esc.inside("tcp_bind", "127.0.0.1", free, opts=opts)
    assert_errno(r, "EACCES", what="bind")


@pytest.fixture
def abstract_server():
    name = f"warden-escape-{uuid.uuid4().hex[:12]}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(16)
    yield "@" + name
    s.close()


def test_host_abstract_unix_socket(esc, abstract_server, landlock_abi):
    """Abstract unix sockets (X11, D-Bus and many agents' helpers listen on them) belong to
    a network namespace and have no file permissions at all."""
    assert_ok(esc.outside("unix_connect", abstract_server))
    r = esc.inside("unix_connect", abstract_server)
    assert_errno(r, "ECONNREFUSED", what="connect")
    if esc.vm:
        return  # what follows is --network host: refused in a VM
    if landlock_abi < 6:
        pytest.skip(f"Landlock ABI {landlock_abi} cannot scope abstract sockets (needs 6)")
    r = esc.inside("unix_connect", abstract_server, opts=["--network", "host"])
    assert_errno(r, "EPERM", what="connect")


def test_host_unix_socket_file(esc, shared_tmp):
    """A socket file on the host (docker.sock, an ssh-agent socket): absent inside."""
    path = os.path.join(shared_tmp, "host.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(16)
    try:
        assert_ok(esc.outside("unix_connect", path))
        for opts in esc.variants([], ["--network", "host"]):
            assert_errno(esc.inside("unix_connect", path, opts=opts), "ENOENT",
                         what="connect")
    finally:
        s.close()


# kind, needs CAP_NET_RAW on the host (tried there in a namespace of the probe's own), the
# sandbox's answer
SOCKETS = [
    ("raw", True, "EPERM"),
    ("raw6", True, "EPERM"),
    ("inet_packet", True, "EPERM"),
    ("packet", True, "EAFNOSUPPORT"),
    ("netlink_audit", False, "EPERM"),
    ("netlink_uevent", False, "EPERM"),
    ("netlink_netfilter", False, "EPERM"),
    ("alg", False, "EAFNOSUPPORT"),
    ("vsock", False, "EAFNOSUPPORT"),
]


@pytest.mark.not_in_vm("socket families are the guest kernel's: a socket made there reaches "
                       "no network and no kernel of the host's (docs/vm.md)")
@pytest.mark.parametrize("kind,raw,inside", SOCKETS, ids=[s[0] for s in SOCKETS])
def test_socket_refused(esc, kind, raw, inside):
    r = esc.outside(*(["--isolate"] if raw and esc.mode == "rootless" else []), "socket", kind)
    if r.returncode != 0 and "[EAFNOSUPPORT]" in r.stderr:
        pytest.skip(f"this kernel has no {kind} sockets at all (EAFNOSUPPORT on the host, "
                    f"the same answer the sandbox gives)")
    assert_ok(r)
    for opts in ([], ["--network", "host"], ["--user", "0"]):
        assert_errno(esc.inside("socket", kind, opts=opts), inside, what="socket")
    if raw:
        # the way an unprivileged process gets CAP_NET_RAW is closed as well
        r = esc.inside("--isolate", "socket", kind)
        assert_errno(r, "EPERM", what="isolate: unshare")


@pytest.mark.not_in_vm("the filter's argument checks are the namespace backend's; in a guest "
                       "the socket call reaches only the guest kernel")
@pytest.mark.parametrize("kind", ["packet", "netlink_audit"])
def test_socket_family_high_bits(esc, kind):
    """The kernel reads the family as an int: bits above 32 set must not slip past a
    filter that compares 64 bits."""
    r = esc.outside(*(["--isolate"] if esc.mode == "rootless" else []), "socket", kind, "hi")
    assert_ok(r)
    r = esc.inside("socket", kind, "hi")
    assert_errno(r, "EAFNOSUPPORT", "EPERM", what="socket")


def test_socket_allowed_families(esc):
    """Control: ordinary sockets still work inside (the refusals above are not blanket)."""
    for kind in ("udp", "netlink_route"):
        assert_ok(esc.outside("socket", kind))
        r = esc.inside("socket", kind)
        assert_ok(r)
        assert r.stderr == "", output(r)


@pytest.mark.not_in_vm(NO_HOST_NETWORK)
def test_abstract_socket_between_sandboxes(esc, landlock_abi):
    """Two sandboxes sharing the host's network (--network host) and, in root mode, the
    same host uid: one listens on an abstract socket, which the host reaches; the other
    sandbox must not (each sandbox is its own Landlock domain)."""
    if landlock_abi < 6:
        pytest.skip(f"Landlock ABI {landlock_abi} cannot scope abstract sockets (needs 6)")
    name = f"@warden-escape-{uuid.uuid4().hex[:12]}"
    listener = esc.popen(esc.inside_argv("unix_listen", name, "20000",
                                         opts=["--network", "host"]),
                         stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "listening\n"
        assert_ok(esc.outside("unix_connect", name))
        r = esc.inside("unix_connect", name, opts=["--network", "host"])
        assert_errno(r, "EPERM", what="connect")
        r = esc.inside("unix_connect", name)
        assert_errno(r, "ECONNREFUSED", what="connect")
    finally:
        listener.terminate()  # warden forwards it, the sandbox ends, warden cleans up
        listener.wait(timeout=30)
