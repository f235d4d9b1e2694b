def test_echo(runner, warden):
    r = runner.run([warden, "run", "--", "/bin/echo", "hello"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"
