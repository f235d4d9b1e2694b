"""Policies through the command line: presets, files, `warden policy`, and the strict
preset's extra restrictions."""
import os
import textwrap

import pytest


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    os.chmod(path, 0o644)
    return path


def test_policy_list_and_show(root_runner, warden):
    r = root_runner.run([warden, "policy", "list"])
    assert r.stdout == "default\nstrict\n"
    r = root_runner.run([warden, "policy", "show", "default"])
    assert r.returncode == 0
    assert "memory: 1G" in r.stdout
    assert "pids: 512" in r.stdout
    assert "mode: none" in r.stdout


def test_policy_show_is_valid_policy(root_runner, warden, shared_tmp):
    for name in ("default", "strict"):
        shown = root_runner.run([warden, "policy", "show", name]).stdout
        path = write(shared_tmp, f"{name}.yaml", shown)
        again = root_runner.run([warden, "policy", "show", path]).stdout
        assert again.replace(f"name: {path}", f"name: {name}") == shown


def test_policy_file_applies(runner, warden, shared_tmp):
    path = write(shared_tmp, "p.yaml", """\
        extends: default
        name: build-box
        process:
          user: "2000:3000"
          env: {GREETING: hello, LANG: C}
        limits:
          pids: 64
        filesystem:
          tmp_size: 32M
        """)
    if runner.mode == "rootless":
        pass  # the single mapped id becomes 2000
    r = runner.run([warden, "run", "-q", "--policy", path, "--", "sh", "-c",
                    'id -u; id -g; echo $GREETING $LANG; df -k /tmp | tail -1'])
    lines = r.stdout.split("\n")
    assert lines[:3] == ["2000", "3000", "hello C"]
    assert lines[3].split()[1] == str(32 * 1024)


def test_command_line_overrides_policy(root_runner, warden, shared_tmp):
    path = write(shared_tmp, "p.yaml", """\
        limits: {pids: 64}
        process: {env: {A: from-policy}}
        """)
    r = root_runner.run([warden, "run", "-q", "--policy", path, "-e", "A=from-cli", "--",
                         "sh", "-c", "echo $A"])
    assert r.stdout == "from-cli\n"


@pytest.mark.parametrize("text,message", [
    ("limits:\n  memory: 12X\n",
     'p.yaml:2:11: limits.memory: "12X": unknown size unit (use K, M, G or T)'),
    ("limits:\n  memroy: 1G\n",
     "p.yaml:2:3: limits.memroy: unknown key (expected one of: memory, pids, cpus, timeout, "
     "nofile)"),
    ("network:\n  mode: internet\n", 'p.yaml:2:9: network.mode: "internet" is not none, proxy or host'),
    ("filesystem:\n  volumes: ['relative:/x']\n",
     "p.yaml:2:13: filesystem.volumes[0]: host path must be absolute in a policy file"),
    ("security:\n  seccomp:\n    deny: [not_a_syscall]\n",
     'p.yaml:3:12: security.seccomp.deny[0]: unknown system call "not_a_syscall"'),
    ("limits: [1, 2]\n", "p.yaml:1:9: limits: expected a mapping, found a list"),
    ("limits: {pids: 3\n", "p.yaml:2:1: YAML syntax:"),
    ("", "p.yaml: empty policy"),
])
def test_bad_policy_files(root_runner, warden, shared_tmp, text, message):
    path = write(shared_tmp, "p.yaml", text)
    for argv in ([warden, "run", "--policy", path, "--", "true"],
                 [warden, "policy", "check", path]):
        r = root_runner.run(argv)
        assert r.returncode == 125
        assert r.stderr.startswith("warden: " + os.path.join(shared_tmp, message)), r.stderr


def test_policy_check_accepts_presets_rendered(root_runner, warden, shared_tmp):
    path = write(shared_tmp, "ok.yaml", "extends: strict\nlimits: {memory: 128M}\n")
    r = root_runner.run([warden, "policy", "check", path])
    assert r.returncode == 0
    assert r.stdout == f"{path}: ok\n"


def test_missing_read_only_path_is_an_error(root_runner, warden, shared_tmp):
    path = write(shared_tmp, "p.yaml", "filesystem:\n  read_only: [/usr, /no-such-dir]\n")
    r = root_runner.run([warden, "run", "--policy", path, "--", "true"])
    assert r.returncode == 125
    assert r.stderr == ("warden: filesystem.read_only: /no-such-dir: No such file or "
                        "directory\n")


def test_both_denied_and_allowed_syscall(root_runner, warden, shared_tmp):
    path = write(shared_tmp, "p.yaml",
                 "security:\n  seccomp: {deny: [getcwd], allow: [getcwd]}\n")
    r = root_runner.run([warden, "run", "--policy", path, "--", "true"])
    assert r.returncode == 125
    assert r.stderr == 'warden: security.seccomp: "getcwd" is both denied and allowed\n'


def test_custom_seccomp_deny(runner, warden, shared_tmp):
    path = write(shared_tmp, "p.yaml", "security:\n  seccomp: {deny: [uname]}\n")
    r = runner.run([warden, "run", "-q", "--policy", path, "--", "uname"])
    assert r.returncode == 1
    assert "Operation not permitted" in r.stderr
    r = runner.run([warden, "run", "-q", "--", "uname"])
    assert r.stdout == "Linux\n"


def test_strict_preset(runner, warden):
    r = runner.run([warden, "run", "-q", "--policy", "strict", "--", "sh", "-c",
                    "ls /etc; df -k /tmp | tail -1; cat /proc/self/limits | "
                    "grep 'Max open files'"])
    assert r.returncode == 0, r.stderr
    etc = r.stdout.split("\n")
    assert "shadow" not in etc and "passwd" in etc and "ld.so.cache" in etc
    assert f" {64 * 1024} " in r.stdout
    assert "1024                 1024" in r.stdout


def test_strict_preset_refuses_ptrace(runner, warden):
    prog = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
            "pid = os.fork()\n"
            "if pid == 0:\n  import time; time.sleep(2); os._exit(0)\n"
            "r = libc.ptrace(16, pid, 0, 0); print(r, ctypes.get_errno()); os.kill(pid, 9)")
    default = runner.run([warden, "run", "-q", "--", "python3", "-c", prog])
    assert default.stdout == "0 0\n"
    strict = runner.run([warden, "run", "-q", "--policy", "strict", "--", "python3", "-c",
                         prog])
    assert strict.stdout == "-1 1\n"


SERVE = ("import socket; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
                  "c = socket.create_connection(s.getsockname()); print('tcp ok')")


def test_tcp_ports_are_refused_unless_listed(runner, warden, shared_tmp):
    prog = SERVE.format(port=18765)
    r = runner.run([warden, "run", "-q", "--", "python3", "-c", prog])
    assert r.returncode == 1 and "PermissionError" in r.stderr
    path = write(shared_tmp, "p.yaml",
                 "network: {tcp_bind: [18765], tcp_connect: [18765]}\n")
    r = runner.run([warden, "run", "-q", "--policy", path, "--", "python3", "-c", prog])
    assert r.stdout == "tcp ok\n", r.stderr
    r = runner.run([warden, "run", "-q", "--policy", path, "--", "python3", "-c",
                    SERVE.format(port=18766)])
    assert r.returncode == 1 and "PermissionError" in r.stderr
    path = write(shared_tmp, "any.yaml", "network: {tcp_bind: any, tcp_connect: any}\n")
    r = runner.run([warden, "run", "-q", "--policy", path, "--", "python3", "-c",
                    SERVE.format(port=18767)])
    assert r.stdout == "tcp ok\n", r.stderr


def test_network_host_keeps_tcp_closed_unless_listed(root_runner, warden, shared_tmp):
    r = root_runner.run([warden, "run", "--network", "host", "--", "python3", "-c",
                         SERVE.format(port=0)])
    assert r.returncode == 1 and "PermissionError" in r.stderr
    assert "TCP only to the ports in network.tcp_connect" in r.stderr
    path = write(shared_tmp, "p.yaml", "network: {mode: host, tcp_bind: any, tcp_connect: any}\n")
    shown = root_runner.run([warden, "policy", "show", path]).stdout
    assert "tcp_bind: any" in shown and "tcp_connect: any" in shown
    r = root_runner.run([warden, "run", "-q", "--policy", path, "--", "python3", "-c",
                         SERVE.format(port=0)])
    assert r.stdout == "tcp ok\n", r.stderr
