"""Kernel interfaces the sandbox refuses: keyrings, bpf, perf, userfaultfd, io_uring, file
handles, kexec, modules, clocks, reboot, swap, accounting, the kernel log, I/O ports, the
LDT, fanotify, uselib and quotas.

Each case runs the attempt on the host first. Where plain success would touch the host
(kexec, modules, reboot, swap, accounting) the arguments are ones the kernel refuses only
*after* its permission check (EINVAL, ENOENT, ENOEXEC...), or with ENOSYS where this kernel
was built without the interface: reaching that error shows the call gets through on the
host. Host root sets the clocks to their current values. Where the test user is refused on the host by the kernel's own permission check, the
rootless run uses a variant the kernel refuses *before* that check (E2BIG, EBADF, EINVAL,
EFAULT), so that the sandbox's EPERM is still told apart from the kernel's answer.
Inside, the seccomp filter answers EPERM before the kernel looks at anything.
"""
import re
from dataclasses import dataclass, field

import pytest

from conftest import assert_errno, failure, output

pytestmark = pytest.mark.not_in_vm("in a VM these calls reach the guest kernel, the "
                                   "boundary there, not the host's; the filter that refuses "
                                   "them is the namespace backend's")

MISSING = "/nonexistent-warden-escape"  # never created: swapon/swapoff/acct stop at ENOENT


@dataclass
class Case:
    id: str
    args: list
    root: tuple = ("ok",)  # what the host gives root: "ok" or the kernel's errno names
    user: tuple = ("ok",)  # the same for the test user
    user_args: list = field(default=None)  # a variant for the test user (see above)
    user_skip: str = None  # why the test user cannot reach the call at all on the host
    inside: str = "EPERM"
    syscall: str = None  # the system call that must fail inside (default: args[0])


CASES = [
    Case("add_key", ["add_key"]),
    Case("keyctl", ["keyctl"]),
    Case("request_key", ["request_key"], root=("ENOKEY",), user=("ENOKEY",)),
    Case("bpf_map_create", ["bpf_map"], user_args=["bpf_map", "oversized"], user=("E2BIG",),
         syscall="bpf"),
    Case("perf_event_open", ["perf_event_open"]),
    Case("userfaultfd", ["userfaultfd"]),
    Case("io_uring_setup", ["io_uring_setup"]),
    Case("name_to_handle_at", ["name_to_handle_at", "/etc/hostname"]),
    Case("open_by_handle_at", ["open_by_handle_at", "/etc/hostname", "/"],
         user_args=["open_by_handle_at", "/etc/hostname", "-"], user=("EBADF",)),
    Case("kexec_load", ["kexec_load"], root=("EINVAL", "ENOSYS"), user=("ENOSYS",)),
    Case("kexec_file_load", ["kexec_file_load"], root=("EINVAL", "ENOSYS"), user=("ENOSYS",)),
    Case("init_module", ["init_module"], root=("ENOEXEC", "ENOSYS"), user=("ENOSYS",)),
    Case("finit_module", ["finit_module"], root=("EBADF", "ENOSYS"), user=("ENOSYS",)),
    Case("delete_module", ["delete_module"], root=("ENOENT", "ENOSYS"), user=("ENOSYS",)),
    Case("clock_settime", ["clock_settime"], user_args=["clock_settime", "invalid"],
         user=("EINVAL",)),
    Case("settimeofday", ["settimeofday"], user_args=["settimeofday", "invalid"],
         user=("EINVAL",)),
    Case("adjtimex_set", ["adjtimex"], user_args=["adjtimex", "invalid"], user=("EFAULT",)),
    Case("clock_adjtime_set", ["clock_adjtime"], user_args=["clock_adjtime", "invalid"],
         user=("EFAULT",)),
    Case("reboot", ["reboot"], root=("EINVAL",), user=("EINVAL",),
         user_skip="reboot checks CAP_SYS_BOOT before its magic numbers"),
    Case("swapon", ["swapon", MISSING], root=("ENOENT",),
         user_args=["swapon", MISSING, "badflags"], user=("EINVAL",)),
    Case("swapoff", ["swapoff", MISSING], root=("ENOENT",), user=("ENOENT",),
         user_skip="swapoff checks CAP_SYS_ADMIN before it looks at its argument"),
    Case("acct", ["acct", MISSING], root=("ENOENT",), user=("ENOENT",),
         user_skip="acct checks CAP_SYS_PACCT before it looks at its argument"),
    Case("syslog_read", ["syslog"],
         user_skip="kernel.dmesg_restrict is set: reading the log needs CAP_SYSLOG"),
    Case("ioperm", ["ioperm"], root=("ok", "ENOSYS"), user=("ok", "ENOSYS")),
    Case("iopl", ["iopl"], root=("ok", "ENOSYS"), user=("ok", "ENOSYS")),
    Case("modify_ldt", ["modify_ldt"]),
    Case("fanotify_init", ["fanotify_init"]),
    Case("uselib", ["uselib", MISSING], root=("ENOENT", "ENOSYS"), user=("ENOENT", "ENOSYS")),
    Case("quotactl_sync", ["quotactl"]),
]


def outcome(r):
    if r.returncode == 0:
        return "ok"
    f = failure(r)
    return f[1] if f else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_interface_refused(esc, case):
    if esc.mode == "root":
        args, allowed = case.args, case.root
    else:
        args, allowed = case.user_args or case.args, case.user
    assert case.inside not in allowed  # otherwise the test could not fail

    r = esc.outside(*args)
    if esc.mode == "rootless" and case.user_skip and outcome(r) == case.inside:
        pytest.skip(f"the host refuses the test user too ({case.user_skip}), with the "
                    f"same {case.inside} the sandbox gives: nothing to compare")
    assert outcome(r) in allowed, f"outside: expected {allowed}\n" + output(r)

    for opts in ([], ["--user", "0"]):  # the agent, and uid 0 of the sandbox
        r = esc.inside(*args, opts=opts)
        assert_errno(r, case.inside)
        step = re.split(r"[ (]", failure(r)[0])[0]
        assert step == (case.syscall or args[0]), "refused at the wrong step\n" + output(r)
