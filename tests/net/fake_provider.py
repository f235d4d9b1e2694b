#!/usr/bin/python3
"""A fake model provider for tests/integration/test_gateway.py (standard library only).

Serves the OpenAI API (POST .../chat/completions, .../responses, .../embeddings) and the
Anthropic API (POST .../messages), streamed (server-sent events, chunked) or not, with
usage fields shaped like the real ones. Prints {"port": N} on stdout once listening.

A request steers its answer with a "fake" object in its JSON body (the gateway forwards
unknown fields as they are):
  status: N          answer N with an error body in the provider's shape
  sleep: S           wait S seconds before answering
  usage: {input, output}  report these token counts (default: body bytes / 4, and
                     max_tokens or 16)
  no_usage: true     report no usage
  chunks: N          stream N text deltas (default 3)
  gate: NAME         stream the first delta, then wait for GET /_release/NAME
  cut: true          stream the first delta, then close the connection mid-answer
  echo_auth: true    put the credential headers received into the answer text (and, with
                     status, into the error message), and send them back as a header

Control endpoints: GET /_log (every request received: path, headers, body), POST /_reset,
GET /_release/NAME.
"""
import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = []
LOG_LOCK = threading.Lock()
GATES = {}
GATES_LOCK = threading.Lock()


def gate(name):
    with GATES_LOCK:
        return GATES.setdefault(name, threading.Event())


def kind_of(path):
    for suffix, kind in (("/chat/completions", "chat"), ("/responses", "responses"),
                         ("/embeddings", "embeddings"), ("/messages", "messages")):
        if path.endswith(suffix):
            return kind
    return None


def sse(event, data):
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(data) + "\n\n").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    # ---- plumbing ----

    def send(self, status, body, ctype="application/json", extra=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_fake")
        self.send_header("openai-organization", "org-secret-account")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, extra=None):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def auth(self):
        return " ".join(f"{h}={self.headers[h]}" for h in ("Authorization", "x-api-key")
                        if self.headers.get(h))

    # ---- control ----

    def do_GET(self):
        if self.path == "/_log":
            with LOG_LOCK:
                self.send(200, LOG)
        elif self.path.startswith("/_release/"):
            gate(self.path[len("/_release/"):]).set()
            self.send(200, {})
        else:
            self.send(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path == "/_reset":
            with LOG_LOCK:
                LOG.clear()
            self.send(200, {})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with LOG_LOCK:
            LOG.append({"path": self.path, "headers": dict(self.headers.items()),
                        "body": body, "raw": raw.decode("utf-8", "replace")})
        kind = kind_of(self.path)
        if kind is None or not isinstance(body, dict):
            self.send(404, {"error": {"message": "fake: unknown path or body"}})
            return
        try:
            self.answer(kind, body, len(raw))
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ---- answers ----

    def answer(self, kind, body, nbytes):
        fake = body.get("fake") or {}
        time.sleep(fake.get("sleep", 0))
        extra = {"x-echo-auth": self.auth()} if fake.get("echo_auth") else {}
        if "status" in fake:
            msg = "fake failure" + (" for " + self.auth() if fake.get("echo_auth") else "")
            if kind == "messages":
                err = {"type": "error", "error": {"type": "api_error", "message": msg}}
            else:
                err = {"error": {"message": msg, "type": "server_error", "code": None}}
            self.send(fake["status"], err, extra=extra)
            return
        usage = fake.get("usage") or {}
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or \
            body.get("max_output_tokens") or 16
        tin = usage.get("input", max(1, nbytes // 4))
        tout = 0 if kind == "embeddings" else usage.get("output", min(limit, 16))
        n = fake.get("chunks", 3)
        deltas = [f"part{i} " for i in range(n)]
        if fake.get("echo_auth"):
            deltas.append("auth: " + self.auth())
        model = body.get("model")
        if body.get("stream") and kind != "embeddings":
            self.stream(kind, body, fake, model, deltas, tin, tout, extra)
        else:
            self.whole(kind, fake, model, "".join(deltas), tin, tout, extra)

    def whole(self, kind, fake, model, text, tin, tout, extra):
        if kind == "chat":
            out = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                   "model": model,
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text}}],
                   "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                             "total_tokens": tin + tout}}
        elif kind == "responses":
            out = {"id": "resp_fake", "object": "response", "status": "completed",
                   "model": model,
                   "output": [{"type": "message", "role": "assistant",
                               "content": [{"type": "output_text", "text": text}]}],
                   "usage": {"input_tokens": tin, "output_tokens": tout,
                             "total_tokens": tin + tout}}
        elif kind == "embeddings":
            out = {"object": "list", "model": model,
                   "data": [{"object": "embedding", "index": 0,
                             "embedding": [0.25, -0.5, 0.125]}],
                   "usage": {"prompt_tokens": tin, "total_tokens": tin}}
        else:
            out = {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": tin, "output_tokens": tout,
                             "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}}
        if fake.get("no_usage"):
            out.pop("usage")
        self.send(200, out, extra=extra)

    def stream_events(self, kind, body, fake, model, deltas, tin, tout):
        """The events of a streamed answer, as (is_text_delta, bytes)."""
        usage = not fake.get("no_usage")
        if kind == "chat":
            for d in deltas:
                yield True, sse(None, {"object": "chat.completion.chunk", "model": model,
                                       "choices": [{"index": 0, "delta": {"content": d}}]})
            yield False, sse(None, {"object": "chat.completion.chunk", "model": model,
                                    "choices": [{"index": 0, "delta": {},
                                                 "finish_reason": "stop"}]})
            if usage and (body.get("stream_options") or {}).get("include_usage"):
                yield False, sse(None, {"object": "chat.completion.chunk", "choices": [],
                                        "usage": {"prompt_tokens": tin,
                                                  "completion_tokens": tout,
                                                  "total_tokens": tin + tout}})
            yield False, b"data: [DONE]\n\n"
        elif kind == "responses":
            yield False, sse("response.created", {"type": "response.created",
                                                  "response": {"id": "resp_fake",
                                                               "usage": None}})
            for d in deltas:
                yield True, sse("response.output_text.delta",
                                {"type": "response.output_text.delta", "delta": d})
            done = {"id": "resp_fake", "status": "completed"}
            if usage:
                done["usage"] = {"input_tokens": tin, "output_tokens": tout,
                                 "total_tokens": tin + tout}
            yield False, sse("response.completed", {"type": "response.completed",
                                                    "response": done})
        else:
            yield False, sse("message_start", {
                "type": "message_start",
                "message": {"id": "msg_fake", "model": model, "content": [],
                            "usage": {"input_tokens": tin, "output_tokens": 1}}})
            yield False, sse("content_block_start", {"type": "content_block_start",
                                                     "index": 0,
                                                     "content_block": {"type": "text",
                                                                       "text": ""}})
            for d in deltas:
                yield True, sse("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": d}})
            yield False, sse("content_block_stop", {"type": "content_block_stop", "index": 0})
            if usage:
                yield False, sse("message_delta", {"type": "message_delta",
                                                   "delta": {"stop_reason": "end_turn"},
                                                   "usage": {"output_tokens": tout}})
            yield False, sse("message_stop", {"type": "message_stop"})

    def stream(self, kind, body, fake, model, deltas, tin, tout, extra):
        self.start_stream(extra)
        first = True
        for is_delta, data in self.stream_events(kind, body, fake, model, deltas, tin, tout):
            self.chunk(data)
            if is_delta and first:
                first = False
                if fake.get("cut"):
                    self.close_connection = True
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                if fake.get("gate"):
                    gate(fake["gate"]).wait(30)
            time.sleep(fake.get("delay", 0))
        self.chunk(b"")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(json.dumps({"port": srv.server_address[1]}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
