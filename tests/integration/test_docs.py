"""The documentation keeps up with the code: every refused system call is explained in
docs/security.md, and every policy key is documented in docs/policy.md."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def test_every_refused_syscall_is_documented():
    src = read("src/lib/ns/seccomp.c")
    names = re.findall(r'\{"([a-z0-9_]+)", "', src)
    assert len(names) > 40
    doc = read("docs/security.md")
    missing = [n for n in names if f"`{n}`" not in doc]
    assert missing == []


def test_every_policy_key_is_documented(root_runner, warden):
    shown = root_runner.run([warden, "policy", "show", "default"]).stdout
    keys = set(re.findall(r"^\s*([a-z_]+):", shown, re.M))
    keys -= {"path", "optional", "LANG"}  # values inside lists and maps, not keys
    doc = read("docs/policy.md")
    missing = sorted(k for k in keys if f"`{k}`" not in doc and f"`{k}." not in doc
                     and f".{k}`" not in doc)
    assert missing == []
