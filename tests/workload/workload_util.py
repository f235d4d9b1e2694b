"""Helpers shared by the workload tests: files created as the invoking user, host-side
ownership, and exit-status checks."""
import os


def write_file(path, text, mode=0o644):
    """Create a file as the invoking user would: owned like the directory it is in."""
    with open(path, "w") as f:
        f.write(text)
    st = os.stat(os.path.dirname(path))
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, mode)


def owners(top):
    """{(uid, gid), ...} of top and everything below it, symlinks not followed."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [""] + dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            seen.add((st.st_uid, st.st_gid))
    return seen


def expected_owner(runner):
    return (0, 0) if runner.mode == "root" else (runner.user.pw_uid, runner.user.pw_gid)


def check(r):
    """Assert a zero exit, showing the sandbox's output when it is not."""
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r
