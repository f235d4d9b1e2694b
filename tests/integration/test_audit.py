"""The audit log through `warden audit`: keys, appends from many processes at once,
verification finding each kind of tampering (with the line and record it names), inclusion
proofs, default paths as root and rootless. The log's format is checked independently of
warden's code: Python's hashlib recomputes the RFC 6962 tree, and openssl checks and makes
the Ed25519 signatures."""
import base64
import errno
import hashlib
import json
import os
import shutil
import subprocess

import pytest

EM_DASH = "\u2014"


# ---- independent reference implementations ----------------------------------------------


def leaf_hash(line):
    return hashlib.sha256(b"\x00" + line).digest()


def mth(leaves):
    """RFC 6962 Merkle tree hash of a list of leaf hashes, by its recursive definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def inclusion_ok(index, size, leaf, path, root):
    """RFC 9162 2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def raw_public_key(pub_pem_path):
    """The 32 raw bytes of an Ed25519 public key PEM (SubjectPublicKeyInfo: 12-byte prefix)."""
    with open(pub_pem_path) as f:
        body = "".join(line for line in f.read().splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    assert len(der) == 44 and der[:12] == bytes.fromhex("302a300506032b6570032100")
    return der[12:]


def key_id(name, raw_pub):
    """c2sp.org/signed-note: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + raw_pub).digest()[:4]


def openssl_sign(priv_pem, data, tmp):
    src, sig = os.path.join(tmp, "tbs"), os.path.join(tmp, "sig")
    with open(src, "wb") as f:
        f.write(data)
    subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", priv_pem, "-rawin", "-in", src,
                    "-out", sig], check=True, capture_output=True)
    with open(sig, "rb") as f:
        return f.read()


def openssl_verify(pub_pem, data, signature, tmp):
    src, sig = os.path.join(tmp, "tbv"), os.path.join(tmp, "sigv")
    with open(src, "wb") as f:
        f.write(data)
    with open(sig, "wb") as f:
        f.write(signature)
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub_pem,
                        "-rawin", "-in", src, "-sigfile", sig], capture_output=True, text=True)
    return r.returncode == 0


def split_note(note):
    """(text, [(name, blob)]) of a signed note."""
    text, _, sigs = note.rpartition("\n\n")
    out = []
    for line in sigs.splitlines():
        assert line.startswith(EM_DASH + " ")
        name, b64 = line[2:].split(" ")
        out.append((name, base64.b64decode(b64)))
    return text + "\n", out


def canonical(obj):
    """The serialisation docs/audit.md specifies: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---- fixtures and helpers ---------------------------------------------------------------


class Log:
    """A log, its key and its public key in a directory of its own."""

    def __init__(self, warden, runner, d):
        self.warden, self.runner, self.dir = warden, runner, d
        self.path = os.path.join(d, "a.log")
        self.key = os.path.join(d, "k.key")
        self.pub = self.key + ".pub"
        self.checkpoint = self.path + ".checkpoint"

    def run(self, *args, input=None, env=None):
        return self.runner.run([self.warden, "audit"] + list(args), input=input, env=env)

    def append(self, records, *extra):
        text = "".join(json.dumps(r) + "\n" for r in records)
        r = self.run("append", "--audit-log", self.path, "--audit-key", self.key,
                     "--origin", "test.example/audit", *extra, input=text)
        assert r.returncode == 0, r.stderr
        return r

    def verify(self, *extra, key=None):
        return self.run("verify", self.path, "--key", key or self.pub, *extra)

    def lines(self):
        with open(self.path, "rb") as f:
            return f.read().splitlines(keepends=True)

    def write(self, lines):
        with open(self.path, "wb") as f:
            f.writelines(lines)


def records(start, n, **extra):
    return [dict({"kind": "test.event", "i": i, "detail": "x" * (i % 7)}, **extra)
            for i in range(start, start + n)]


@pytest.fixture
def log(warden, root_runner, shared_tmp):
    return Log(warden, root_runner, shared_tmp)


@pytest.fixture
def standard(log):
    """30 records with checkpoints every 10 (records 10, 21, 32), then 3 more: 36 lines."""
    log.append(records(0, 30), "--checkpoint-every", "10", "--batch", "7")
    log.append(records(30, 3), "--checkpoint-every", "10")
    assert len(log.lines()) == 36
    return log


def assert_tampered(r, want):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert want in r.stderr, r.stderr


# ---- keys -------------------------------------------------------------------------------


def test_keygen(log):
    r = log.run("keygen", "--key", log.key)
    assert r.returncode == 0, r.stderr
    assert os.stat(log.key).st_mode & 0o777 == 0o600
    assert os.stat(log.pub).st_mode & 0o777 == 0o644
    with open(log.key) as f:
        assert f.read().startswith("-----BEGIN PRIVATE KEY-----\n")
    r = subprocess.run(["openssl", "pkey", "-pubin", "-in", log.pub, "-noout", "-text"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "ED25519 Public-Key" in r.stdout
    with open(log.key) as f:
        before = f.read()
    r = log.run("keygen", "--key", log.key)
    assert r.returncode == 125
    assert "refusing to replace a key" in r.stderr and "File exists" in r.stderr
    with open(log.key) as f:
        assert f.read() == before


def rewrap_pem(src, dst, width):
    """The same PEM key with its base64 in lines of width characters: still valid PEM, but
    not the one-line form warden writes (and reads without OpenSSL's decoders)."""
    with open(src) as f:
        lines = f.read().splitlines()
    body = "".join(lines[1:-1])
    wrapped = [body[i:i + width] for i in range(0, len(body), width)]
    with open(dst, "w") as f:
        f.write("\n".join([lines[0]] + wrapped + [lines[-1]]) + "\n")
    os.chmod(dst, 0o600)


def test_keys_made_by_openssl_in_any_pem_form(log):
    """A key from `openssl genpkey`, and the same key wrapped differently, sign checkpoints
    that openssl verifies with its public key; a key of another algorithm is refused."""
    r = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", log.key],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    os.chmod(log.key, 0o600)
    subprocess.run(["openssl", "pkey", "-in", log.key, "-pubout", "-out", log.pub], check=True)
    log.append(records(0, 3), "--checkpoint-every", "3")
    wrapped = os.path.join(log.dir, "wrapped.key")
    rewrap_pem(log.key, wrapped, 20)
    r = log.run("append", "--audit-log", log.path, "--audit-key", wrapped, "--origin",
                "test.example/audit", "--checkpoint-every", "2",
                input="".join(json.dumps(rec) + "\n" for rec in records(3, 2)))
    assert r.returncode == 0, r.stderr
    notes = [rec["note"] for rec in map(json.loads, log.lines())
             if rec["kind"] == "audit.checkpoint"]
    assert len(notes) == 2  # one signed with each form of the key
    for note in notes:
        text, sigs = split_note(note)
        assert openssl_verify(log.pub, text.encode(), sigs[0][1][4:], log.dir)
    pub_wrapped = os.path.join(log.dir, "wrapped.pub")
    rewrap_pem(log.pub, pub_wrapped, 16)
    r = log.verify(key=pub_wrapped)
    assert r.returncode == 0, r.stderr
    rsa = os.path.join(log.dir, "rsa.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024",
                    "-out", rsa], check=True, capture_output=True)
    os.chmod(rsa, 0o600)
    r = log.run("append", "--audit-log", log.path, "--audit-key", rsa, input="{}\n")
    assert r.returncode == 125
    assert f"{rsa}: not an Ed25519 key" in r.stderr, r.stderr


def test_key_created_on_first_use_and_said_so(log):
    r = log.append(records(0, 1))
    assert f"warden: created audit key {log.key} (public key {log.key}.pub)" in r.stderr
    r = log.append(records(1, 1))
    assert "created" not in r.stderr


# ---- the format, checked independently --------------------------------------------------


def test_log_format_is_rfc6962_with_signed_note_checkpoints(log):
    log.append(records(0, 2500), "--batch", "300")
    lines = log.lines()
    assert len(lines) == 2502  # checkpoints after 1000 records, and after 1000 more
    leaves = []
    cps = []
    for n, raw in enumerate(lines):
        assert raw.endswith(b"\n")
        line = raw[:-1]
        rec = json.loads(line)
        assert canonical(rec).encode() == line
        assert rec["seq"] == n and rec["v"] == 1
        assert rec["ts"].endswith("Z") and len(rec["ts"]) == len("2026-01-02T03:04:05.123456Z")
        if n % 97 == 0 or rec["kind"] == "audit.checkpoint":
            assert rec["prev"] == base64.b64encode(mth(leaves)).decode(), n
        if rec["kind"] == "audit.checkpoint":
            cps.append((n, rec["note"]))
        leaves.append(leaf_hash(line))
    assert [n for n, _ in cps] == [1000, 2001]

    raw_pub = raw_public_key(log.pub)
    for n, note in cps:
        text, sigs = split_note(note)
        assert text == f"test.example/audit\n{n}\n{base64.b64encode(mth(leaves[:n])).decode()}\n"
        assert len(sigs) == 1
        name, blob = sigs[0]
        assert name == "test.example/audit"
        assert blob[:4] == key_id(name, raw_pub)
        assert openssl_verify(log.pub, text.encode(), blob[4:], log.dir)
    with open(log.checkpoint) as f:
        assert f.read() == cps[-1][1]
    r = log.verify()
    assert r.returncode == 0, r.stderr
    assert "2502 records, 2001 covered by a signed checkpoint" in r.stdout


def test_checkpoint_verb(log):
    log.append(records(0, 5))
    r = log.run("checkpoint", "--audit-log", log.path, "--audit-key", log.key)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "checkpoint of 5 records\n"
    with open(log.checkpoint) as f:
        assert f.read().split("\n")[1] == "5"
    r = log.verify("--checkpoint", log.checkpoint)
    assert r.returncode == 0, r.stderr
    assert "6 records, 5 covered by a signed checkpoint" in r.stdout


def test_state_file_damage_does_not_matter(log):
    log.append(records(0, 4))
    with open(log.path + ".state", "w") as f:
        f.write("warden-audit-state 1\nsize 999\n")
    log.append(records(4, 4))
    os.unlink(log.path + ".state")
    log.append(records(8, 4))
    r = log.verify()
    assert r.returncode == 0, r.stderr
    assert "12 records" in r.stdout


# ---- concurrent writers ------------------------------------------------------------------


def test_concurrent_writers(log, root_runner):
    log.append(records(0, 1))  # the key, made once
    n, writers = 150, 4
    procs = []
    for w in range(writers):
        text = "".join(json.dumps(r) + "\n" for r in records(0, n, writer=w))
        p = subprocess.Popen(root_runner.prefix() + [
            log.warden, "audit", "append", "--audit-log", log.path, "--audit-key", log.key,
            "--batch", "1", "--checkpoint-every", "50"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=root_runner.env())
        procs.append((p, text))
    for p, text in procs:
        out, err = p.communicate(text, timeout=120)
        assert p.returncode == 0, err
    seen = set()
    cps = 0
    lines = log.lines()
    for raw in lines:
        rec = json.loads(raw)  # every line whole
        if rec["kind"] == "audit.checkpoint":
            cps += 1
        elif "writer" in rec:
            key = (rec["writer"], rec["i"])
            assert key not in seen
            seen.add(key)
    assert len(seen) == n * writers
    assert len(lines) == 1 + n * writers + cps
    r = log.verify()
    assert r.returncode == 0, r.stderr


# ---- tampering ---------------------------------------------------------------------------


def edit(line, **fields):
    rec = json.loads(line)
    rec.update(fields)
    return canonical(rec).encode() + b"\n"


def test_untouched_log_verifies(standard):
    r = standard.verify()
    assert r.returncode == 0, r.stderr
    assert "36 records, 32 covered by a signed checkpoint" in r.stdout
    assert "the last 4 records are chained but not signed yet" in r.stdout


@pytest.mark.parametrize("line", [5, 10, 31])
def test_changed_byte_anywhere_in_a_record(standard, line):
    lines = standard.lines()
    orig = lines[line]
    for i in range(len(orig) - 1):
        b = bytearray(orig)
        b[i] ^= 0x01
        lines[line] = bytes(b)
        standard.write(lines)
        r = standard.verify()
        assert r.returncode == 1, (i, bytes(b))
    lines[line] = orig
    standard.write(lines)
    assert standard.verify().returncode == 0


def test_changed_record_is_named(standard):
    lines = standard.lines()
    lines[5] = lines[5].replace(b'"i":5', b'"i":6')
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:7: record 6: \"prev\" does not match the records "
                    "before it: record 5 (line 6) or one before it was changed")


def test_deleted_record(standard):
    lines = standard.lines()
    del lines[5]
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:6: record 5: \"seq\" is 6, expected 5")


def test_deleted_record_with_renumbering(standard):
    lines = standard.lines()
    del lines[5]
    lines = [edit(line, seq=n) for n, line in enumerate(lines)]
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:6: record 5: \"prev\" does not match")


def test_inserted_record(standard):
    lines = standard.lines()
    lines.insert(6, edit(lines[5], i=1000))
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:7: record 6: \"seq\" is 5, expected 6")


def test_reordered_records(standard):
    lines = standard.lines()
    lines[5], lines[6] = lines[6], lines[5]
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:6: record 5: \"seq\" is 6, expected 5")
    # with "seq" and "prev" swapped back to fit their places: the chain still breaks
    lines = standard.lines()
    a, b = json.loads(lines[5]), json.loads(lines[6])
    lines[5] = edit(lines[5], seq=a["seq"] - 1, prev=b["prev"])
    lines[6] = edit(lines[6], seq=b["seq"] + 1, prev=a["prev"])
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:7: record 6: \"prev\" does not match")


def test_truncation_behind_the_last_checkpoint(standard):
    kept = os.path.join(standard.dir, "kept.checkpoint")
    shutil.copy(standard.checkpoint, kept)  # a copy kept elsewhere, covering 32 records
    lines = standard.lines()
    standard.write(lines[:15])
    # Without a checkpoint kept elsewhere, a log cut at a record boundary is a valid
    # shorter log: verify says so, and how much of it is covered.
    r = standard.verify()
    assert r.returncode == 0, r.stderr
    assert "15 records, 10 covered by a signed checkpoint" in r.stdout
    assert "without --checkpoint, records removed from the end of the log go unnoticed" \
        in r.stdout
    # With it, the truncation is found.
    assert_tampered(standard.verify("--checkpoint", kept),
                    f"a.log: 15 records, but checkpoint {kept} covers 32: records were "
                    "removed from the end of the log (truncated)")
    # Cut and grown again with consistently chained records: only the copy tells.
    standard.append(records(100, 25), "--checkpoint-every", "1000")
    assert standard.verify().returncode == 0
    assert_tampered(standard.verify("--checkpoint", kept),
                    "a.log:32: record 31: the first 32 records do not match checkpoint")


def test_truncation_inside_a_record(standard):
    with open(standard.path, "r+b") as f:
        f.truncate(os.path.getsize(standard.path) - 10)
    assert_tampered(standard.verify(), "a.log:36: record 35: incomplete line at the end")


def test_checkpoint_verified_with_another_key(standard, warden, root_runner):
    other = os.path.join(standard.dir, "other.key")
    assert root_runner.run([warden, "audit", "keygen", "--key", other]).returncode == 0
    assert_tampered(standard.verify(key=other + ".pub"),
                    "a.log:11: record 10: checkpoint: not signed by the given key (signed "
                    "by: test.example/audit (key ID")


@pytest.mark.parametrize("what", ["size", "root"])
def test_checkpoint_edited(standard, what):
    lines = standard.lines()
    rec = json.loads(lines[21])
    origin, size, root, rest = rec["note"].split("\n", 3)
    if what == "size":
        size = "20"
    else:
        root = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    lines[21] = edit(lines[21], note="\n".join([origin, size, root, rest]))
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:22: record 21: checkpoint: the signature by "
                    "test.example/audit")


def test_checkpoint_resigned_with_another_key(standard, warden, root_runner):
    other = os.path.join(standard.dir, "other.key")
    assert root_runner.run([warden, "audit", "keygen", "--key", other]).returncode == 0
    lines = standard.lines()
    rec = json.loads(lines[21])
    text, _ = split_note(rec["note"])
    sig = openssl_sign(other, text.encode(), standard.dir)
    name = "test.example/audit"
    blob = key_id(name, raw_public_key(other + ".pub")) + sig
    forged = f"{text}\n{EM_DASH} {name} {base64.b64encode(blob).decode()}\n"
    # the forgery is a good note under the other key
    assert openssl_verify(other + ".pub", text.encode(), sig, standard.dir)
    lines[21] = edit(lines[21], note=forged)
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:22: record 21: checkpoint: not signed by the "
                    "given key")
    # and the whole log re-signed that way fails at its first checkpoint
    assert_tampered(standard.verify(key=other + ".pub"), "a.log:11: record 10: checkpoint: "
                    "not signed by the given key")


def test_checkpoint_replayed(standard):
    lines = standard.lines()
    first = json.loads(lines[10])["note"]
    lines[21] = edit(lines[21], note=first)
    standard.write(lines)
    assert_tampered(standard.verify(), "a.log:22: record 21: checkpoint size 10 is not above "
                    "the previous checkpoint's 10")


def test_forged_external_checkpoint(standard):
    with open(standard.checkpoint) as f:
        note = f.read()
    forged = os.path.join(standard.dir, "forged.checkpoint")
    with open(forged, "w") as f:
        f.write(note.replace("\n32\n", "\n33\n"))
    assert_tampered(standard.verify("--checkpoint", forged), f"{forged}: the signature by")


# ---- proofs ------------------------------------------------------------------------------


def test_proofs(standard):
    proof = os.path.join(standard.dir, "p.json")
    for n in (0, 7, 21, 31):
        r = standard.run("prove", standard.path, str(n), "--key", standard.pub)
        assert r.returncode == 0, r.stderr
        p = json.loads(r.stdout)
        assert p["index"] == n and p["tree_size"] == 32 and len(p["path"]) == 5
        assert p["record"].encode() + b"\n" == standard.lines()[n]
        with open(proof, "w") as f:
            f.write(r.stdout)
        r = standard.run("verify", "--proof", proof, "--key", standard.pub)
        assert r.returncode == 0, r.stderr
        assert f"valid: record {n} is in the signed tree of 32 records" in r.stdout

        # independently: the path leads from the leaf to the signed root, which is the
        # root of the log's first 32 lines
        text, _ = split_note(p["checkpoint"])
        root = base64.b64decode(text.split("\n")[2])
        assert root == mth([leaf_hash(x[:-1]) for x in standard.lines()[:32]])
        assert inclusion_ok(n, 32, leaf_hash(p["record"].encode()),
                            [base64.b64decode(h) for h in p["path"]], root)

        for field, bad in (("record", p["record"].replace('"v":1', '"v":2')),
                           ("path", [p["path"][0][:-2] + ("A=" if p["path"][0][-2] != "A"
                                                          else "B=")] + p["path"][1:]),
                           ("index", (n + 1) % 32)):
            with open(proof, "w") as f:
                json.dump(dict(p, **{field: bad}), f)
            r = standard.run("verify", "--proof", proof, "--key", standard.pub)
            assert r.returncode == 1, (field, r.stderr)

    other = os.path.join(standard.dir, "other.key")
    assert standard.run("keygen", "--key", other).returncode == 0
    r = standard.run("prove", standard.path, "3")
    with open(proof, "w") as f:
        f.write(r.stdout)
    assert_tampered(standard.run("verify", "--proof", proof, "--key", other + ".pub"),
                    "not signed by the given key")
    r = standard.run("prove", standard.path, "33")
    assert r.returncode == 125
    assert "no checkpoint covers record 33 yet (the latest covers records 0 to 31)" in r.stderr


# ---- default paths, errors ----------------------------------------------------------------


def test_rootless_default_paths(warden, rootless_runner, shared_tmp):
    state = os.path.join(shared_tmp, "state")
    env = {"XDG_STATE_HOME": state}
    r = rootless_runner.run([warden, "audit", "append"], input='{"kind":"x"}\n', env=env)
    assert r.returncode == 0, r.stderr
    log = os.path.join(state, "warden", "audit.log")
    key = os.path.join(state, "warden", "audit.key")
    assert f"created audit key {key}" in r.stderr
    st = os.stat(log)
    assert st.st_uid == rootless_runner.uid and st.st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(state, "warden")).st_mode & 0o777 == 0o700
    r = rootless_runner.run([warden, "audit", "checkpoint"], env=env)
    assert r.returncode == 0, r.stderr
    r = rootless_runner.run([warden, "audit", "verify", "--key", key + ".pub"], env=env)
    assert r.returncode == 0, r.stderr
    assert f"{log}: intact: 2 records, 1 covered" in r.stdout


def test_environment_overrides(warden, root_runner, shared_tmp):
    log = os.path.join(shared_tmp, "env", "e.log")
    key = os.path.join(shared_tmp, "env", "e.key")
    env = {"WARDEN_AUDIT_LOG": log, "WARDEN_AUDIT_KEY": key}
    r = root_runner.run([warden, "audit", "append"], input='{"kind":"x"}\n', env=env)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(log) and os.path.exists(key + ".pub")
    # --audit-log wins over the environment
    other = os.path.join(shared_tmp, "env", "o.log")
    r = root_runner.run([warden, "audit", "append", "--audit-log", other],
                        input='{"kind":"y"}\n', env=env)
    assert r.returncode == 0, r.stderr
    with open(other) as f:
        assert json.loads(f.read())["kind"] == "y"


def test_usage_and_io_errors(log):
    log.append(records(0, 3))
    r = log.run("verify", log.path)
    assert r.returncode == 125 and "--key PUB is required" in r.stderr
    missing = os.path.join(log.dir, "missing.log")
    r = log.run("verify", missing, "--key", log.pub)
    assert r.returncode == 125
    assert f"open {missing}: No such file or directory" in r.stderr
    r = log.run("verify", log.path, "--key", log.path)
    assert r.returncode == 125 and "not a PEM key" in r.stderr
    r = log.run("prove", log.path, "x")
    assert r.returncode == 125
    r = log.run("frobnicate")
    assert r.returncode == 125 and "unknown subcommand" in r.stderr
    r = log.run("append", "--audit-log", log.path, "--audit-key", log.key,
                input='{"kind":"ok"}\nnot json\n')
    assert r.returncode == 125 and "stdin:2: not JSON" in r.stderr
    r = log.run("append", "--audit-log", log.path, "--audit-key", log.key,
                input='{"kind":"audit.checkpoint"}\n')
    assert r.returncode == 125 and "are the log's own" in r.stderr
    # nothing of that reached the log but the one good record
    assert len(log.lines()) == 4
    assert log.verify().returncode == 0
    os.chmod(log.key, 0o644)
    r = log.run("append", "--audit-log", log.path, "--audit-key", log.key, input="{}\n")
    assert r.returncode == 125 and "is accessible to other users (mode 0644)" in r.stderr


# ---- no record, no sandbox ----------------------------------------------------------------


def test_sandbox_does_not_run_when_its_creation_cannot_be_recorded(root_runner, warden, shared_tmp):
    """The record of a sandbox's creation is made durable while the sandbox is built; when
    writing it fails (a full disk), the command never starts. The same run with room on the
    disk does start it."""
    fs = os.path.join(shared_tmp, "small")
    os.mkdir(fs)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", fs], check=True)
    try:
        out = os.path.join(shared_tmp, "out")
        os.mkdir(out)
        os.chmod(out, 0o777)
        log, key = os.path.join(fs, "a.log"), os.path.join(fs, "a.key")
        argv = [warden, "run", "-q", "--audit-log", log, "--audit-key", key, "-v",
                f"{out}:/out", "--", "sh", "-c", "touch /out/ran"]
        r = root_runner.run(argv)
        assert r.returncode == 0, r.stderr
        assert os.path.exists(os.path.join(out, "ran"))
        os.unlink(os.path.join(out, "ran"))
        # Fill what is left: the key and the log stay readable, a new record does not fit.
        fd = os.open(os.path.join(fs, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError as e:
            assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)
        # The log's last page may still hold a run or two: go on until one cannot be recorded.
        for _ in range(20):
            r = root_runner.run(argv)
            if r.returncode != 0:
                break
            os.unlink(os.path.join(out, "ran"))
        assert r.returncode == 125, (r.returncode, r.stderr)
        assert "audit" in r.stderr and "No space left on device" in r.stderr, r.stderr
        assert not os.path.exists(os.path.join(out, "ran"))
    finally:
        subprocess.run(["umount", "-l", fs], check=False)
