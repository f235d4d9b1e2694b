"""Shell work under the default policy: pipelines, xargs -P, tee, here-documents,
redirections (including /dev/stdout and /dev/stderr), `ps aux` seeing only the sandbox, and
background processes started, waited for, and cleaned up."""
import os
import random
import subprocess
import time

import pytest

from workload_util import check

PIPELINES = r"""
set -e
for w in pear apple fig apple pear apple kiwi fig apple; do echo "$w"; done > /tmp/words
sort /tmp/words | uniq -c | sort -rn | head -3
echo ---
seq 1 20 | xargs -P2 -n3 sh -c 'echo "$#:$*"' sh | sort -t: -k2 -n
echo ---
seq 1 5 | tee /tmp/tee.out | paste -sd+ | bc
cat /tmp/tee.out | wc -l
echo ---
name=agent
cat <<EOF
expanded: $name $((6 * 7)) $(echo sub)
EOF
cat <<'EOF'
literal: $name $((6 * 7))
EOF
tr a-z A-Z <<< "here string"
echo ---
echo to-null > /dev/null
ls /nonexistent 2> /dev/null || echo "ls failed quietly"
echo to-stderr 1>&2
{ echo grouped-out; echo grouped-err >&2; } 2>/tmp/err.log
cat /tmp/err.log
exec 3> /tmp/fd3.out
echo via-fd3 >&3
exec 3>&-
cat /tmp/fd3.out
printf 'a\nb\n' | while read -r line; do printf '[%s]' "$line"; done; echo
echo $(( $(seq 1 100 | paste -sd+) ))
"""


def test_pipelines_xargs_tee_heredocs_redirections(sandbox):
    r = check(sandbox("bash", "-c", PIPELINES))
    parts = r.stdout.split("---\n")
    assert parts[0] == "      4 apple\n      2 pear\n      2 fig\n" or \
        parts[0] == "      4 apple\n      2 fig\n      2 pear\n", parts[0]
    lines = parts[1].splitlines()
    assert len(lines) == 7
    assert sorted(int(x) for line in lines for x in line.split(":")[1].split()) == \
        list(range(1, 21))
    assert parts[2] == "15\n5\n"
    assert parts[3] == "expanded: agent 42 sub\nliteral: $name $((6 * 7))\nHERE STRING\n"
    assert parts[4] == ("ls failed quietly\ngrouped-out\ngrouped-err\nvia-fd3\n[a][b]\n"
                        "5050\n")
    assert r.stderr == "to-stderr\n"


def test_xargs_parallel_really_overlaps(sandbox):
    """xargs -P2 runs two children at once: each records when it starts and ends."""
    script = r"""
seq 1 2 | xargs -P2 -I{} sh -c 'echo "start {}" >> /tmp/log; sleep 0.5; echo "end {}" >> /tmp/log'
cat /tmp/log
"""
    r = check(sandbox("sh", "-c", script))
    events = [line.split()[0] for line in r.stdout.splitlines()]
    assert events[:2] == ["start", "start"], r.stdout


@pytest.mark.parametrize("via", ["pipe", "file"])
def test_redirect_to_dev_stdout_and_stderr(sandbox, runner, warden, workdir, request, via,
                                           isolation):
    """`echo x > /dev/stderr` reopens the sandbox's stdout/stderr through /proc/self/fd.
    Here they are a pipe or a file created by the invoking user, as in a terminal session
    piping warden into another program or redirecting it into a log. (In a VM they are
    the guest's pipes, whatever the caller's are.)"""
    if runner.mode == "root" and via == "file" and isolation != "vm":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "limitation (docs/security.md): in root mode the sandbox user is a host uid of "
            "its own, so a file owned by the invoking root cannot be reopened through "
            "/dev/stdout; pipes are handed over, files are left alone")))
    inner = "echo out >> /dev/stdout; echo err >> /dev/stderr; echo in=$(cat /dev/stdin)"
    cmd = [warden, "run", "-q", "--", "sh", "-c", inner]
    out, err = os.path.join(workdir, "out"), os.path.join(workdir, "err")
    if via == "pipe":
        shell = f'echo piped | {{ "$@" 2>&1 1>&3 3>&- | cat > {err}; }} 3>&1 | cat > {out}'
    else:
        shell = f'echo piped > {workdir}/in; "$@" < {workdir}/in >> {out} 2>>{err}'
    r = runner.run(["sh", "-c", shell, "sh"] + cmd)
    assert r.returncode == 0, r.stderr
    with open(out) as f_out, open(err) as f_err:
        assert (f_out.read(), f_err.read()) == ("out\nin=piped\n", "err\n")


@pytest.mark.not_in_vm("a guest's ps lists its own kernel's threads and its agent: the "
                       "guest's processes, none of the host's")
def test_ps_aux_shows_only_the_sandbox(sandbox):
    r = check(sandbox("sh", "-c", "sleep 5 & ps aux; kill $!"))
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["USER", "PID"], r.stdout
    procs = [line.split(None, 10) for line in lines[1:]]
    pids = sorted(int(p[1]) for p in procs)
    commands = [p[10] for p in procs]
    # The sandbox's init (pid 1), the shell, the background sleep and ps itself: nothing
    # of the host's (no pytest, no kernel threads, no host init).
    assert len(procs) == 4, r.stdout
    assert pids[0] == 1 and max(pids) < 50, r.stdout
    assert "ps aux" in commands and "sleep 5" in commands, r.stdout
    assert not any("pytest" in c or c.startswith("[") for c in commands), r.stdout
    for p in procs:
        if int(p[1]) != 1:
            assert p[0] == "agent", r.stdout


def test_background_process_waited_for(sandbox):
    script = r"""
( sleep 0.3; echo bg-done > /tmp/bg ) &
bg=$!
echo "started $([ -e /tmp/bg ] && echo early || echo pending)"
wait "$bg"; echo "wait=$?"
cat /tmp/bg
sh -c 'exit 5' & wait $!; echo "status=$?"
sleep 30 & s=$!
kill -TERM "$s"; wait "$s"; echo "killed=$?"
"""
    r = check(sandbox("bash", "-c", script))
    assert r.stdout == "started pending\nwait=0\nbg-done\nstatus=5\nkilled=143\n"


def test_background_server_on_unix_socket(sandbox):
    """A server started in the background (as an agent starts a dev server), a client
    talking to it, then the server stopped and waited for."""
    script = r"""
set -e
python3 - <<'EOF' &
import os, socket
s = socket.socket(socket.AF_UNIX)
s.bind("/tmp/srv.sock")
s.listen()
open("/tmp/srv.ready", "w").close()
while True:
    c, _ = s.accept()
    data = c.recv(100)
    if data == b"quit":
        c.sendall(b"bye")
        break
    c.sendall(data.upper())
    c.close()
EOF
srv=$!
i=0; while [ ! -e /tmp/srv.ready ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
python3 -c '
import socket
for msg in (b"hello", b"quit"):
    c = socket.socket(socket.AF_UNIX); c.connect("/tmp/srv.sock"); c.sendall(msg)
    print(c.recv(100).decode()); c.close()'
wait $srv
echo "server exited $?"
"""
    r = check(sandbox("bash", "-c", script))
    assert r.stdout == "HELLO\nbye\nserver exited 0\n"


def test_background_process_does_not_outlive_the_sandbox(sandbox):
    """A background process still running when the command exits is killed with the
    sandbox rather than left behind on the host."""
    marker = f"{random.randint(100000, 999999)}.5"
    t0 = time.monotonic()
    r = check(sandbox("sh", "-c", f"sleep {marker} >/dev/null 2>&1 & echo started"))
    assert r.stdout == "started\n"
    assert time.monotonic() - t0 < 30
    deadline = time.monotonic() + 5
    while True:
        ps = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
        if ps.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert ps.returncode == 1, f"left behind: {ps.stdout}"
