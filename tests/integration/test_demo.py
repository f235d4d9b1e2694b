"""`make demo` keeps working: every attempt of the demo agent is blocked and its honest
work is done."""
import os
import subprocess

from conftest import BUILD, ROOT


def test_demo(root_runner):
    r = subprocess.run([os.path.join(ROOT, "demo", "run.sh"), BUILD], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    attempts = [line for line in r.stdout.splitlines() if line.startswith("  [")]
    assert len(attempts) == 10, r.stdout
    assert all(line.startswith("  [BLOCKED ]") for line in attempts), r.stdout
    assert "wrote report.txt in /workspace as agent" in r.stdout
    assert "sums of squares: [333328333350000," in r.stdout
    net = [line for line in r.stdout.splitlines() if line.startswith("  net [")]
    marks = [line[7:15] for line in net]
    assert marks == ["allowed "] + ["BLOCKED "] * 4 + ["allowed ", "BLOCKED "], r.stdout
    assert "OPENAI_API_KEY inside is wdn-" in r.stdout
    assert "cloud metadata address 169.254.169.254" in r.stdout
    assert "model.call   demo-mini      status 200" in r.stdout
    assert ": intact: " in r.stdout
    # the microVM part: the guest's own kernel, not the host's
    guest = next(line for line in r.stdout.splitlines() if "guest kernel: " in line)
    assert os.uname().release not in guest and "cloud-amd64" in guest, r.stdout
