"""Fixtures for the workload suite: a volume directory owned by whoever runs warden, and a
helper that runs a command in a sandbox under the `default` policy."""
import os
import shutil
import tempfile

import pytest


@pytest.fixture
def workdir(runner):
    """A host directory for a volume, owned by the user who runs warden (root, or the
    rootless test user), as an agent's project directory would be."""
    d = tempfile.mkdtemp(prefix="warden-workload-")
    gid = 0 if runner.mode == "root" else runner.user.pw_gid
    os.chown(d, runner.uid, gid)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def sandbox(runner, warden):
    """sandbox(CMD..., volumes={host: path}, workdir=PATH, timeout=S) runs CMD under the
    default policy and returns the CompletedProcess. Warnings (-q) are kept out of stderr
    so that tests can assert on what the command itself wrote there."""

    def run(*cmd, volumes=None, workdir=None, timeout=120, input=None, extra=()):
        argv = [warden, "run", "-q", "--policy", "default"]
        for host, path in (volumes or {}).items():
            argv += ["-v", f"{host}:{path}"]
        if workdir:
            argv += ["-w", workdir]
        argv += list(extra) + ["--"] + list(cmd)
        return runner.run(argv, timeout=timeout, input=input)

    return run
