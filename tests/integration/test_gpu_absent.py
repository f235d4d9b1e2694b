"""GPU grants and tools on a host without an NVIDIA driver: every path says so plainly and
starts nothing. (On a GPU host these tests are skipped; tests/gpu/run.sh covers it.)"""
import json
import os

import pytest

from conftest import BUILD

NO_DRIVER = "gpu: no NVIDIA driver on this host (/dev/nvidiactl is missing)"

pytestmark = pytest.mark.skipif(os.path.exists("/dev/nvidiactl"),
                                reason="an NVIDIA driver is present (tests/gpu/run.sh)")


def test_run_with_gpu_refused(runner, warden, shared_tmp):
    r = runner.run([warden, "run", "-q", "--gpu", "0", "--", "true"])
    assert r.returncode == 125
    assert r.stderr == f"warden: {NO_DRIVER}\n"
    path = os.path.join(shared_tmp, "gpu.yaml")
    with open(path, "w") as f:
        f.write("gpu:\n  devices: [GPU-8f6a1c2e-1111-2222-3333-444455556666]\n")
    os.chmod(path, 0o644)
    r = runner.run([warden, "run", "-q", "--policy", path, "--", "true"])
    assert r.returncode == 125
    assert r.stderr == f"warden: {NO_DRIVER}\n"


@pytest.mark.parametrize("args", [["list"], ["leakcheck"], ["scrub", "0"], ["bandwidth", "1"]])
def test_gpu_verbs(runner, warden, args):
    r = runner.run([warden, "gpu", *args])
    assert r.returncode == 125
    assert r.stderr == f"warden: {NO_DRIVER}\n"
    assert r.stdout == ""


def test_gpu_verb_usage(root_runner, warden):
    r = root_runner.run([warden, "gpu", "scrub", "all"])
    assert r.returncode == 125 and "name one device" in r.stderr
    r = root_runner.run([warden, "gpu", "frobnicate"])
    assert r.returncode == 125 and "unknown command" in r.stderr


HELPER_CASES = [
    (["list"], "NVML is not available: libnvidia-ml.so.1: cannot open shared object file"),
    (["watch", "--sandbox", "x", "GPU-1"], "NVML is not available: libnvidia-ml.so.1"),
    (["scrub", "GPU-1"], "NVML is not available: libnvidia-ml.so.1"),
    (["bandwidth", "GPU-1"], "CUDA is not available: libcuda.so.1: cannot open shared"),
    (["leak-write", "GPU-1", "c0ffee"], "CUDA is not available: libcuda.so.1"),
    (["leak-listen", "GPU-1", "c0ffee"], "CUDA is not available: libcuda.so.1"),
    (["leak-control", "GPU-1", "c0ffee"], "CUDA is not available: libcuda.so.1"),
    (["leakcheck", "GPU-1"], "CUDA is not available: libcuda.so.1"),
]


@pytest.mark.parametrize("args,want", HELPER_CASES, ids=[c[0][0] for c in HELPER_CASES])
def test_helper_reports_absence(root_runner, args, want):
    """warden-gpu loads NVML and libcuda with dlopen(): without them it answers with exit
    status 2 and one JSON line naming the missing library."""
    r = root_runner.run([os.path.join(BUILD, "warden-gpu"), *args])
    assert r.returncode == 2, r.stdout + r.stderr
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert want in answer["error"], answer


def test_helper_usage(root_runner):
    r = root_runner.run([os.path.join(BUILD, "warden-gpu"), "nonsense"])
    assert r.returncode == 3 and "usage:" in r.stderr
