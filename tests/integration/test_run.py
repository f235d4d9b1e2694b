"""warden run: exit statuses, options, identity, files, environment, errors.

Each test runs real processes in real sandboxes; those using the `runner` fixture run
once as root and once as an unprivileged user (rootless)."""
import os
import re
import signal
import subprocess
import time

import pytest


def run(runner, warden, *cmd, opts=(), **kw):
    return runner.run([warden, "run", "-q", *opts, "--", *cmd], **kw)


# ---- exit statuses ------------------------------------------------------------------


def test_exit_status_passes_through(runner, warden):
    assert run(runner, warden, "sh", "-c", "exit 0").returncode == 0
    assert run(runner, warden, "sh", "-c", "exit 3").returncode == 3
    assert run(runner, warden, "sh", "-c", "exit 255").returncode == 255


def test_killed_by_signal_is_128_plus_n(runner, warden):
    assert run(runner, warden, "sh", "-c", "kill -TERM $$").returncode == 128 + 15
    assert run(runner, warden, "sh", "-c", "kill -KILL $$").returncode == 128 + 9


def test_command_not_found_is_127(runner, warden):
    r = run(runner, warden, "no-such-command-here")
    assert r.returncode == 127
    assert r.stderr == "warden: exec: no-such-command-here: No such file or directory\n"


def test_command_not_executable_is_126(runner, warden):
    r = run(runner, warden, "/etc/passwd")
    assert r.returncode == 126
    assert r.stderr == "warden: exec: /etc/passwd: Permission denied\n"


def test_timeout_kills_the_sandbox_with_124(runner, warden):
    start = time.monotonic()
    r = run(runner, warden, "sh", "-c", "sleep 30 & sleep 30", opts=["--timeout", "0.5"])
    assert r.returncode == 124
    assert "warden: timeout: killed after 0.5 s" in r.stderr
    assert time.monotonic() - start < 20


def test_no_command_is_an_error(runner, warden):
    r = runner.run([warden, "run"])
    assert r.returncode == 125
    assert "warden: run: no command given" in r.stderr


@pytest.mark.parametrize("opts,message", [
    (["--memory", "12X"], 'warden: --memory: "12X": unknown size unit (use K, M, G or T)'),
    (["--memory", "1M"], 'warden: --memory: "1M": must be at least 8M'),
    (["--pids", "-1"], 'warden: --pids: "-1": not a whole number'),
    (["--pids", "1"], 'warden: --pids: "1": must be at least 2'),
    (["--cpus", "abc"], 'warden: --cpus: "abc": not a number'),
    (["--tmp-size", "10K"], 'warden: --tmp-size: "10K": must be at least 1M'),
    (["--timeout", "0"], 'warden: --timeout: "0": must be more than 0 seconds'),
    (["--user", "bob"], 'warden: --user: "bob": expected agent, root or UID[:GID]'),
    (["--network", "wifi"], 'warden: --network: "wifi" is not none, proxy or host'),
    (["-v", "/tmp"], 'warden: --volume: "/tmp": expected HOST:PATH[:ro|rw]'),
    (["-v", "/tmp:rel"], 'warden: --volume: "/tmp:rel": sandbox path "rel" must be absolute'),
    (["-v", "/tmp:/x:rx"], 'warden: --volume: "/tmp:/x:rx": mode "rx" is not ro or rw'),
    (["-v", "/nonexistent-dir:/x"], "warden: volume /nonexistent-dir: no such directory"),
    (["-w", "relative"], 'warden: --workdir: "relative" is not an absolute, normalized path'),
    (["-e", "1BAD=x"], 'warden: --env: "1BAD" is not a valid variable name'),
    (["--policy", "nope"], 'warden: no preset named "nope" (presets: default, strict)'),
    (["--policy", "/nonexistent.yaml"], "warden: policy /nonexistent.yaml: No such file"),
    (["--rootfs", "/nonexistent"], "warden: --rootfs: /nonexistent: No such file"),
    (["--frobnicate"], "warden: run: unknown option --frobnicate"),
])
def test_bad_options_are_precise_errors(root_runner, warden, opts, message):
    r = root_runner.run([warden, "run", *opts, "--", "true"])
    assert r.returncode == 125, r
    assert r.stderr.startswith(message), r.stderr
    assert r.stdout == ""


def test_unknown_verb(root_runner, warden):
    r = root_runner.run([warden, "frob"])
    assert r.returncode == 125
    assert r.stderr == "warden: unknown verb \"frob\" (try 'warden help')\n"


# ---- identity -----------------------------------------------------------------------


def test_default_identity_is_agent(runner, warden):
    r = run(runner, warden, "sh", "-c", 'id -un; id -u; id -gn; echo "$HOME $USER"; hostname')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:5] == ["agent", "1000", "agent", "/home/agent agent",
                                        "warden"]


def test_user_option_sets_ids(root_runner, warden):
    r = run(root_runner, warden, "sh", "-c", "id -u; id -g; id -un; echo $HOME",
            opts=["--user", "1234:4321"])
    assert r.stdout.split() == ["1234", "4321", "agent", "/home/agent"]
    r = run(root_runner, warden, "sh", "-c", "id -un; echo $HOME", opts=["--user", "root"])
    assert r.stdout.split() == ["root", "/root"]


def test_root_inside_is_not_root_outside(root_runner, warden):
    """Sandbox uid 0 maps to an unprivileged host uid: its processes are not host root."""
    proc = subprocess.Popen([warden, "run", "-q", "--user", "root", "--", "sleep", "30"])
    try:
        uid = None
        for _ in range(100):
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
            if out:
                init = out[0]
                kids = subprocess.run(["pgrep", "-P", init], capture_output=True,
                                      text=True).stdout.split()
                if kids:
                    with open(f"/proc/{kids[0]}/status") as f:
                        uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
                    break
            time.sleep(0.05)
        assert uid is not None
        assert uid >= 2**31, f"sandbox root runs as host uid {uid}"
    finally:
        proc.kill()
        proc.wait()


def test_capabilities_and_no_new_privs(runner, warden, isolation):
    r = run(runner, warden, "grep", "-E", "^(Cap|NoNewPrivs|Seccomp:)", "/proc/self/status")
    fields = dict(line.split(":\t") for line in r.stdout.strip().split("\n"))
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert fields[cap] == "0000000000000000", (cap, fields[cap])
    assert fields["NoNewPrivs"] == "1"
    # In a VM the boundary is the guest kernel: no seccomp filter is installed there.
    assert fields["Seccomp"] == ("0" if isolation == "vm" else "2")


# ---- environment --------------------------------------------------------------------


def test_environment_is_cleared(runner, warden):
    r = runner.run([warden, "run", "-q", "--", "env"], env={"SECRET_TOKEN": "s3cr3t"})
    names = sorted(line.split("=", 1)[0] for line in r.stdout.strip().split("\n"))
    assert names == ["HOME", "LANG", "LOGNAME", "PATH", "SHELL", "TMPDIR", "USER"]
    assert "s3cr3t" not in r.stdout


def test_env_option_sets_and_passes(runner, warden):
    r = runner.run([warden, "run", "-q", "-e", "A=1", "-e", "SECRET_TOKEN", "-e", "UNSET_ONE",
                    "-e", "LANG=C", "--", "env"], env={"SECRET_TOKEN": "s3cr3t"})
    env = dict(line.split("=", 1) for line in r.stdout.strip().split("\n"))
    assert env["A"] == "1"
    assert env["SECRET_TOKEN"] == "s3cr3t"
    assert env["LANG"] == "C"
    assert "UNSET_ONE" not in env


# ---- files --------------------------------------------------------------------------


def test_system_dirs_read_only_and_homes_hidden(runner, warden, isolation):
    script = ("touch /usr/x 2>&1; touch /etc/x 2>&1; touch /x 2>&1; ls /home; "
              "test -e /root && echo root-visible; test -e /sys/kernel && echo sys-visible; "
              "test -e /run/systemd && echo run-visible; ls /var")
    r = run(runner, warden, "sh", "-c", script)
    lines = r.stdout.strip().split("\n")
    assert "Read-only file system" in lines[0]
    assert "Read-only file system" in lines[1]
    assert "Read-only file system" in lines[2]
    # A guest has a /sys of its own kernel (its virtual devices), nothing of the host's.
    assert lines[3:] == ["agent"] + (["sys-visible"] if isolation == "vm" else []) + ["tmp"]


def test_private_writable_places(runner, warden):
    r = run(runner, warden, "sh", "-c",
            "for d in /tmp /var/tmp /dev/shm $HOME; do echo x > $d/f && echo ok $d; done; "
            "stat -c '%a' /tmp /var/tmp /dev/shm $HOME")
    assert r.stdout.split("\n")[:8] == ["ok /tmp", "ok /var/tmp", "ok /dev/shm",
                                        "ok /home/agent", "1777", "1777", "1777", "700"]


def test_tmp_size_bounds_the_writable_layer(runner, warden):
    r = run(runner, warden, "sh", "-c",
            "dd if=/dev/zero of=/tmp/a bs=1M count=64 2>&1; "
            "dd if=/dev/zero of=$HOME/b bs=1M count=64 2>&1",
            opts=["--tmp-size", "48M"])
    assert r.stdout.count("No space left on device") == 2, r.stdout


def test_generated_etc_files(runner, warden):
    r = run(runner, warden, "cat", "/etc/passwd", "/etc/hosts")
    assert "agent:x:1000:1000:agent:/home/agent:/bin/sh" in r.stdout
    assert "127.0.1.1\twarden" in r.stdout
    for line in r.stdout.splitlines():
        if ":x:" in line:
            assert line.split(":")[0] in ("root", "nobody", "agent")


def test_volume_rw_and_ownership(runner, warden, shared_tmp):
    with open(os.path.join(shared_tmp, "in.txt"), "w") as f:
        f.write("from host\n")
    os.chown(os.path.join(shared_tmp, "in.txt"), runner.uid, runner.uid)
    os.chown(shared_tmp, runner.uid, runner.uid)
    r = run(runner, warden, "sh", "-c",
            "cat in.txt && echo made > out.txt && mkdir sub && touch sub/f && ls -ln in.txt",
            opts=["-v", f"{shared_tmp}:/work", "-w", "/work"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("from host\n")
    # inside, the caller's files belong to the sandbox user
    assert " 1000 1000 " in r.stdout
    for name in ("out.txt", "sub", "sub/f"):
        st = os.stat(os.path.join(shared_tmp, name))
        assert (st.st_uid, st.st_gid) == (runner.uid, runner.uid), name


def test_volume_read_only(runner, warden, shared_tmp):
    r = run(runner, warden, "sh", "-c", "touch /data/x",
            opts=["-v", f"{shared_tmp}:/data:ro"])
    assert r.returncode == 1
    assert "Read-only file system" in r.stderr
    assert not os.path.exists(os.path.join(shared_tmp, "x"))


def test_root_mode_volume_belongs_to_its_owner(root_runner, warden, shared_tmp, test_user):
    """As root, a volume's owner is who its files belong to: `sudo warden run -v ~/proj`
    leaves the user's own files writable inside and new files owned by the user."""
    owned = os.path.join(shared_tmp, "owned")
    os.mkdir(owned)
    os.chown(owned, test_user.pw_uid, test_user.pw_gid)
    r = run(root_runner, warden, "sh", "-c", "touch new && stat -c '%u' new .",
            opts=["-v", f"{owned}:/w", "-w", "/w"])
    assert r.stdout == "1000\n1000\n", r.stderr
    st = os.stat(os.path.join(owned, "new"))
    assert (st.st_uid, st.st_gid) == (test_user.pw_uid, test_user.pw_gid)


def test_relative_volume_path(root_runner, warden, shared_tmp):
    os.mkdir(os.path.join(shared_tmp, "proj"))
    with open(os.path.join(shared_tmp, "proj", "f"), "w") as f:
        f.write("rel\n")
    r = root_runner.run([warden, "run", "-q", "-v", "proj:/p", "--", "cat", "/p/f"],
                        cwd=shared_tmp)
    assert r.stdout == "rel\n"


def test_workdir_is_created_when_missing(runner, warden):
    r = run(runner, warden, "sh", "-c", "pwd; touch here && echo writable",
            opts=["-w", "/work/deep"])
    assert r.stdout.split() == ["/work/deep", "writable"]


def test_no_residue_between_sandboxes(runner, warden):
    first = run(runner, warden, "sh", "-c", "echo x > /tmp/left; echo y > $HOME/left")
    assert first.returncode == 0
    second = run(runner, warden, "sh", "-c", "ls -A /tmp $HOME /dev/shm")
    assert "left" not in second.stdout


# ---- processes, terminals, signals --------------------------------------------------


@pytest.mark.not_in_vm("pids are the guest kernel's own: its kernel threads come first "
                       "and /proc lists them")
def test_pid_namespace(runner, warden):
    r = run(runner, warden, "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    pid, count = r.stdout.split()
    assert pid == "2"  # 1 is warden's init
    assert int(count) <= 4


def test_stdin_and_stderr(runner, warden):
    r = run(runner, warden, "sh", "-c", "tr a-z A-Z; echo err >&2", input="hello\n")
    assert r.stdout == "HELLO\n"
    assert r.stderr == "err\n"


def test_large_output(runner, warden):
    r = run(runner, warden, "head", "-c", "5000000", "/dev/zero")
    assert len(r.stdout) == 5000000


def test_tty_option_gives_a_terminal(root_runner, warden):
    r = root_runner.run(["script", "-qec",
                         f"{warden} run -q -t -- sh -c 'tty; test -t 0 && echo stdin-tty; "
                         f"echo TERM=$TERM'", "/dev/null"], env={"TERM": "xterm-test"})
    assert r.returncode == 0, r
    out = r.stdout.replace("\r", "")
    assert "/dev/pts/0\n" in out
    assert "stdin-tty\n" in out
    assert "TERM=xterm-test\n" in out


def test_without_tty_there_is_no_controlling_terminal(root_runner, warden):
    r = root_runner.run(["script", "-qec", f"{warden} run -q -- sh -c 'tty; cat /dev/tty'",
                         "/dev/null"])
    out = r.stdout.replace("\r", "")
    assert "not a tty" in out or "No such device" in out


def test_sigterm_is_forwarded(root_runner, warden):
    proc = subprocess.Popen([warden, "run", "-q", "--", "sh", "-c",
                             "trap 'echo got-term; exit 7' TERM; echo ready; "
                             "while :; do sleep 0.05; done"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert out == "got-term\n"
    assert proc.returncode == 7


def _descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True,
                         text=True).stdout
    kids = {}
    for line in out.split("\n"):
        if line.strip():
            p, pp = map(int, line.split())
            kids.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            found.append(k)
            todo.append(k)
    return found


def test_sandbox_dies_with_its_supervisor(root_runner, warden, isolation):
    proc = subprocess.Popen([warden, "run", "-q", "--", "sh", "-c",
                             "sleep 300 & sleep 300 & echo ready; wait"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    inside = _descendants(proc.pid)
    # init, sh, two sleeps; in a VM the host sees QEMU's sandbox: its init and QEMU
    assert len(inside) >= (2 if isolation == "vm" else 4)
    proc.kill()
    proc.wait()
    for _ in range(100):
        alive = [p for p in inside if os.path.exists(f"/proc/{p}")]
        if not alive:
            break
        time.sleep(0.05)
    assert alive == []


def test_background_processes_end_with_the_main_one(root_runner, warden):
    # a duration no other process on the host is sleeping for, so that pgrep finds only this
    secs = f"300.{os.getpid()}{time.monotonic_ns() % 1000000}"
    r = run(root_runner, warden, "sh", "-c", f"sleep {secs} & echo started")
    assert r.stdout == "started\n"
    assert subprocess.run(["pgrep", "-f", f"^sleep {re.escape(secs)}$"]).returncode == 1


# ---- network ------------------------------------------------------------------------


def test_network_none_has_only_loopback(runner, warden):
    r = run(runner, warden, "cat", "/proc/net/dev")
    ifaces = [line.split(":")[0].strip() for line in r.stdout.split("\n")[2:] if ":" in line]
    assert ifaces == ["lo"]


def _lo_sizes(text):
    return {k: int(v) for k, v in re.findall(r"\b(gso_max_size|tso_max_size) (\d+)", text)}


@pytest.mark.not_in_vm("the guest's loopback is its own kernel's, left as that kernel "
                       "sets it up")
def test_loopback_takes_big_packets_the_hosts_keeps_its_own(runner, warden):
    host = _lo_sizes(subprocess.run(["ip", "-d", "link", "show", "lo"], capture_output=True,
                                    text=True, check=True).stdout)
    if host.get("tso_max_size", 0) < 524280:
        pytest.skip(f"this kernel's loopback takes at most {host.get('tso_max_size')} bytes "
                    "per packet (no BIG TCP)")
    inside = _lo_sizes(run(runner, warden, "ip", "-d", "link", "show", "lo").stdout)
    # packets of 512 KiB on the sandbox's lo (the tunnels' and the gateway's side)...
    assert inside["gso_max_size"] == 524280
    # ...and the host's lo untouched
    again = _lo_sizes(subprocess.run(["ip", "-d", "link", "show", "lo"], capture_output=True,
                                     text=True, check=True).stdout)
    assert again["gso_max_size"] == host["gso_max_size"]


CC = "/proc/sys/net/ipv4/tcp_congestion_control"
CC_OF_A_SOCKET = ("import socket; s = socket.socket(); "
                  "print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)"
                  ".rstrip(bytes(1)).decode())")


@pytest.mark.not_in_vm("the guest's loopback is its own kernel's, with that kernel's default")
def test_loopback_is_not_paced_the_hosts_keeps_its_own(runner, warden):
    with open(CC) as f:
        host = f.read().strip()
    r = run(runner, warden, "sh", "-c", f"cat {CC}; python3 -c '{CC_OF_A_SOCKET}'")
    assert r.returncode == 0, r.stderr
    # the namespace's default, and so what every socket made in the sandbox gets
    assert r.stdout.split() == ["reno", "reno"]
    # ...and the host's default untouched, also where the sandbox shares its network
    with open(CC) as f:
        assert f.read().strip() == host
    shared = run(runner, warden, "cat", CC, opts=("--network", "host"))
    assert shared.stdout.strip() == host, shared.stderr


ESTABLISHED_CC = """
import socket, subprocess
s = socket.create_connection(("127.0.0.1", 3128))
print(subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True,
                     check=True).stdout)
"""


@pytest.mark.not_in_vm("the guest's loopback is its own kernel's, with that kernel's default")
def test_the_proxys_side_of_a_connection_is_not_paced(runner, warden):
    # The proxy's end of a connection is the supervisor's socket (accepted on the listener
    # init made): the one that sends a tunnel's bytes to the client.
    r = run(runner, warden, "python3", "-c", ESTABLISHED_CC, opts=("--network", "proxy"))
    assert r.returncode == 0, r.stderr
    ends = re.findall(r"127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:(\d+)\s*\n\s*(\w+)", r.stdout)
    assert "3128" in {local for local, _, _ in ends}, r.stdout
    assert len(ends) == 2 and all(cc == "reno" for _, _, cc in ends), r.stdout


BULK = """
import hashlib, os, socket, sys, threading
fam, addr = (socket.AF_INET6, "::1") if sys.argv[1] == "6" else (socket.AF_INET, "127.0.0.1")
srv = socket.socket(fam)
srv.bind((addr, 18771))
srv.listen(1)
data = os.urandom(1 << 20) * 48
def serve():
    c, _ = srv.accept()
    c.sendall(data)
    c.close()
t = threading.Thread(target=serve)
t.start()
cl = socket.create_connection((addr, 18771))
h, n = hashlib.sha256(), 0
while True:
    b = cl.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
t.join()
print(n, h.hexdigest() == hashlib.sha256(data).hexdigest())
"""


def test_loopback_carries_bulk_streams_intact_v4_and_v6(runner, warden, shared_tmp):
    # the sandbox's lo builds packets of up to 512 KiB (IPv6 with the kernel's jumbo
    # header): 48 MiB each way must arrive whole and unchanged
    path = os.path.join(shared_tmp, "bulk.yaml")
    with open(path, "w") as f:
        f.write("network: {tcp_bind: [18771], tcp_connect: [18771]}\n")
    os.chmod(path, 0o644)
    for fam in ("4", "6"):
        r = run(runner, warden, "python3", "-c", BULK, fam, opts=("--policy", path))
        assert r.stdout == f"{48 << 20} True\n", r.stderr


@pytest.mark.not_in_vm("a guest has no network device: --network host is refused "
                       "(docs/vm.md)")
def test_network_host_warns_and_shares(root_runner, warden):
    r = root_runner.run([warden, "run", "--network", "host", "--", "cat", "/proc/net/dev"])
    assert "warning: network.mode: host: the sandbox shares the host's network" in r.stderr
    with open("/proc/net/dev") as f:
        host = sorted(line.split(":")[0].strip() for line in f.read().split("\n")[2:]
                      if ":" in line)
    inside = sorted(line.split(":")[0].strip() for line in r.stdout.split("\n")[2:]
                    if ":" in line)
    assert inside == host


# ---- cleanup ------------------------------------------------------------------------


def _warden_cgroups():
    found = []
    for top in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        for dirpath, dirnames, _ in os.walk(top):
            found += [os.path.join(dirpath, d) for d in dirnames
                      if os.path.basename(dirpath) == "warden" or d.startswith("warden-")]
    return sorted(set(found))


def test_nothing_left_behind(root_runner, warden):
    before = set(_warden_cgroups())
    for opts in ([], ["--cpus", "0.5"], ["--timeout", "0.2"]):
        run(root_runner, warden, "sh", "-c", "sleep 1 & echo x > /tmp/y", opts=opts)
    assert set(_warden_cgroups()) - before == set()
