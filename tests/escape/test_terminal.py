"""Terminals: keystroke injection (TIOCSTI: typed into whatever reads the terminal next,
such as the user's shell once the sandbox exits), virtual-console control (TIOCLINUX) and
line-discipline switching (TIOCSETD: n_gsm/n_hdlc kernel bugs).

Each attempt runs with a fresh pseudo-terminal as its controlling terminal: directly on
the host, under `warden run -t` (the sandbox's own terminal) and under plain `warden run`
with the host terminal as the sandbox's stdio, the case that matters most.
"""
import pytest

from conftest import assert_errno, assert_ok, output

INSIDE_MODES = [["-t"], []]
NO_TERMINAL = ("opening the terminal", "ENXIO")


def refusals(esc, what):
    """(opts, step, errno) of the attempt inside, under -t and with the host's terminal as
    stdio. In a VM the host's terminal never reaches the guest: the command's stdio are
    the guest's pipes, and it has no terminal to open. Under -t it drives a terminal of
    the guest kernel, as it may: nothing of that reaches the host's (docs/vm.md)."""
    if esc.vm:
        return [([], *NO_TERMINAL)]
    return [(opts, what, "EPERM") for opts in INSIDE_MODES]


def test_tiocsti_injection(esc):
    r = esc.in_pty([esc.probe, "tiocsti"])
    assert_ok(r)
    assert "#" in r.stdout, "the injected character was not echoed\n" + output(r)
    for opts, what, errno in refusals(esc, "ioctl(TIOCSTI)"):
        r = esc.in_pty(esc.inside_argv("tiocsti", opts=opts))
        assert_errno(r, errno, what=what)
        assert "#" not in r.stdout, "a character was injected\n" + output(r)


def test_tiocsti_high_bits(esc):
    """The kernel reads the ioctl command as 32 bits: TIOCSTI with bit 32 set is still
    TIOCSTI on the host and must still be refused."""
    r = esc.in_pty([esc.probe, "tiocsti", "hi"])
    assert_ok(r)
    assert "#" in r.stdout, output(r)
    for opts, what, errno in refusals(esc, "ioctl(TIOCSTI)"):
        r = esc.in_pty(esc.inside_argv("tiocsti", "hi", opts=opts))
        assert_errno(r, errno, what=what)
        assert "#" not in r.stdout, output(r)


def test_tioclinux(esc):
    """On the host a pseudo-terminal answers ENOTTY (not a virtual console): the ioctl
    reaches the terminal driver. Inside it is refused before that."""
    r = esc.in_pty([esc.probe, "tioclinux"])
    assert_errno(r, "ENOTTY", "EINVAL")
    for opts, what, errno in refusals(esc, "ioctl(TIOCLINUX)"):
        r = esc.in_pty(esc.inside_argv("tioclinux", opts=opts))
        assert_errno(r, errno, what=what)


@pytest.mark.parametrize("opts", [
    pytest.param(["-t"], id="tty", marks=pytest.mark.not_in_vm(
        "-t gives the command a terminal of the guest kernel, which it may drive as it "
        "likes: nothing of it reaches the host's terminal")),
    pytest.param([], id="host-terminal")])
def test_tiocsetd(esc, opts):
    assert_ok(esc.in_pty([esc.probe, "tiocsetd"]))
    r = esc.in_pty(esc.inside_argv("tiocsetd", opts=opts))
    what, errno = NO_TERMINAL if esc.vm else ("ioctl(TIOCSETD)", "EPERM")
    assert_errno(r, errno, what=what)


def test_tiocsti_after_taking_host_terminal(esc):
    """Without -t the sandbox's stdio is the caller's terminal. Where that terminal is no
    session's controlling terminal yet (warden started by a daemon or a `setsid` wrapper
    with a terminal as stdio), a process may make it its own (TIOCSCTTY), after which the
    kernel's own TIOCSTI check (the caller's controlling terminal) passes. The probe does
    exactly that on the host, and inside only the filter stands in the way."""
    r = esc.in_pty([esc.probe, "tiocsti", "steal"], ctty=False)
    assert_ok(r)
    assert "#" in r.stdout, output(r)
    r = esc.in_pty(esc.inside_argv("tiocsti", "steal"), ctty=False)
    what, errno = NO_TERMINAL if esc.vm else ("ioctl(TIOCSTI)", "EPERM")
    assert_errno(r, errno, what=what)
    assert "#" not in r.stdout, output(r)


def test_vhangup(esc):
    """vhangup hangs up the caller's controlling terminal for every process using it."""
    if esc.mode == "rootless":
        pytest.skip("vhangup needs CAP_SYS_TTY_CONFIG: the host refuses the test user with "
                    "the same EPERM the sandbox gives")
    assert_ok(esc.in_pty([esc.probe, "vhangup"]))
    for opts in esc.variants(["-t"], ["-t", "--user", "0"], []):
        r = esc.in_pty(esc.inside_argv("vhangup", opts=opts))
        assert_errno(r, "EPERM", what="vhangup")
