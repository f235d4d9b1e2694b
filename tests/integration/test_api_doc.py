"""docs/api.yaml keeps up with wardend: every route wardend serves (its routing table, from
`wardend --routes`) is documented with its query parameters, nothing else is documented,
and every error code the daemon's source can send is listed."""
import os
import re
import subprocess

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML (Debian: python3-yaml) is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WARDEN_BUILD", os.path.join(ROOT, "build"))
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_doc():
    with open(os.path.join(ROOT, "docs", "api.yaml")) as f:
        return yaml.safe_load(f)


def resolve(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def served():
    """{(METHOD, path): {query parameters}} from the daemon's own routing table."""
    wardend = os.path.join(BUILD, "wardend")
    if not os.path.exists(wardend):
        pytest.fail(f"{wardend} is missing: run `make build` first")
    out = subprocess.run([wardend, "--routes"], capture_output=True, text=True,
                         check=True).stdout
    routes = {}
    for line in out.splitlines():
        parts = line.split()
        routes[(parts[0], parts[1])] = set(parts[2].split(",")) if len(parts) > 2 else set()
    return routes


def documented(doc):
    """{(METHOD, path): ({query parameters}, {path parameters})} from api.yaml."""
    ops = {}
    for path, item in doc["paths"].items():
        shared = [resolve(doc, p) for p in item.get("parameters", [])]
        for method in METHODS:
            if method not in item:
                continue
            params = shared + [resolve(doc, p) for p in item[method].get("parameters", [])]
            query = {p["name"] for p in params if p["in"] == "query"}
            in_path = {p["name"] for p in params if p["in"] == "path"}
            ops[(method.upper(), path)] = (query, in_path)
    return ops


def test_every_route_is_documented_and_nothing_else():
    routes, ops = served(), documented(load_doc())
    assert len(routes) >= 19
    assert sorted(set(routes) - set(ops)) == [], "served but not in docs/api.yaml"
    assert sorted(set(ops) - set(routes)) == [], "in docs/api.yaml but not served"


def test_query_and_path_parameters_match():
    routes, ops = served(), documented(load_doc())
    for key, query in routes.items():
        doc_query, doc_path = ops[key]
        assert doc_query == query, key
        assert doc_path == set(re.findall(r"\{(\w+)\}", key[1])), key


def test_every_operation_documents_its_responses():
    doc = load_doc()
    ids = set()
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                assert op.get("operationId") and op["operationId"] not in ids, (method, path)
                ids.add(op["operationId"])
                codes = set(op["responses"])
                assert codes & {"200", "201", "204"}, (method, path)
                if "{id}" in path:
                    assert "404" in codes, (method, path)
                for r in op["responses"].values():
                    resolve(doc, r)  # every $ref resolves


def test_every_error_code_is_listed():
    src = ""
    for name in sorted(os.listdir(os.path.join(ROOT, "src", "daemon"))):
        if name.endswith(".c"):
            with open(os.path.join(ROOT, "src", "daemon", name)) as f:
                src += f.read()
    codes = set(re.findall(r'(?:api_fail|reply_error)\([^,]+,\s*\d+,\s*"([a-z_]+)"', src))
    codes |= set(re.findall(r'\{E[A-Z]+, \d+, "([a-z_]+)"\}', src))  # errno_status()
    codes |= set(re.findall(r'job_fail\(j,\s*\d+,\s*"([a-z_]+)"', src))
    assert len(codes) > 20
    listed = set(load_doc()["components"]["schemas"]["Error"]["properties"]["error"]
                 ["properties"]["code"]["examples"])
    assert sorted(codes - listed) == []
