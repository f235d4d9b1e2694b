"""git under the default policy: a repository created and committed to in a volume, its
files and objects owned on the host by the user who ran warden, and readable by git on the
host afterwards; a clone of a host repository pushed back into a volume."""
import os

from workload_util import check, expected_owner, owners, write_file

GIT_IDENTITY = r"""
git config --global user.email agent@example.invalid
git config --global user.name Agent
git config --global init.defaultBranch main
"""

COMMIT_SCRIPT = GIT_IDENTITY + r"""
git init -q .
printf 'hello\n' > README
mkdir -p src/deep
for i in 1 2 3; do echo "line $i" > "src/deep/f$i.txt"; done
git add -A
git commit -q -m first
echo more >> README
git checkout -q -b feature
git commit -q -am second
git checkout -q main
git merge -q --ff-only feature
git tag v1
git gc -q
git log --format=%s
git rev-list --count HEAD
git status --porcelain
git fsck --no-progress 2>&1 && echo fsck-ok
"""


def test_git_init_add_commit_in_volume(sandbox, workdir, runner):
    r = check(sandbox("sh", "-ec", COMMIT_SCRIPT, volumes={workdir: "/repo"},
                      workdir="/repo"))
    assert r.stdout == "second\nfirst\n2\nfsck-ok\n", r.stdout

    # Every file, including .git's objects, packs and refs, belongs to the invoking user.
    assert os.path.isdir(os.path.join(workdir, ".git", "objects", "pack"))
    assert os.listdir(os.path.join(workdir, ".git", "objects", "pack"))
    assert owners(workdir) == {expected_owner(runner)}

    # The host's git, run as the same user (so that its safe.directory ownership check
    # applies as it would for that user), reads what the sandbox wrote.
    log = runner.run(["git", "-C", workdir, "log", "--format=%an %s", "v1"])
    assert log.returncode == 0, log.stderr
    assert log.stdout == "Agent second\nAgent first\n"
    show = runner.run(["git", "-C", workdir, "show", "HEAD:README"])
    assert show.stdout == "hello\nmore\n"


def _host_git(runner, *args):
    env = {"GIT_AUTHOR_NAME": "Host", "GIT_AUTHOR_EMAIL": "h@example.invalid",
           "GIT_COMMITTER_NAME": "Host", "GIT_COMMITTER_EMAIL": "h@example.invalid",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    r = runner.run(["git"] + list(args), env=env)
    assert r.returncode == 0, r.stderr
    return r


def test_git_clone_and_push_to_volume(sandbox, workdir, runner):
    """A bare repository prepared on the host is cloned inside; the clone's new commit is
    pushed back into it through the volume."""
    origin = os.path.join(workdir, "origin.git")
    seed = os.path.join(workdir, "seed")
    _host_git(runner, "init", "-q", "--bare", "-b", "main", origin)
    _host_git(runner, "init", "-q", "-b", "main", seed)
    write_file(os.path.join(seed, "a.txt"), "from host\n")
    _host_git(runner, "-C", seed, "add", "a.txt")
    _host_git(runner, "-C", seed, "commit", "-q", "-m", "host")
    _host_git(runner, "-C", seed, "push", "-q", origin, "main")

    script = GIT_IDENTITY + r"""
git clone -q /origin.git /tmp/clone
cd /tmp/clone
cat a.txt
echo "from sandbox" > b.txt
git add b.txt
git commit -q -m sandbox
git push -q origin main
"""
    r = check(sandbox("sh", "-ec", script, volumes={origin: "/origin.git"}))
    assert r.stdout == "from host\n"
    log = _host_git(runner, "--git-dir", origin, "log", "--format=%an %s", "main")
    assert log.stdout == "Agent sandbox\nHost host\n"
    assert owners(origin) == {expected_owner(runner)}
