// Drives `warden mcp` with the official MCP TypeScript SDK, the way an MCP host would: it
// spawns the server over stdio, initializes, lists the tools, calls each of them, provokes
// the errors a model provokes, and prints one JSON summary on stdout for
// tests/integration/test_mcp.py to judge. It asserts nothing itself: every check is
// recorded (a thrown error included) so that the summary says what happened.
//
// usage: node tests/mcp/client.mjs WARDEN [warden mcp options...]
import { readFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [warden, ...options] = process.argv.slice(2);
if (!warden) {
  console.error("usage: node client.mjs WARDEN [warden mcp options...]");
  process.exit(2);
}

const transport = new StdioClientTransport({
  command: warden,
  args: ["mcp", ...options],
  stderr: "pipe",
});
let serverLog = "";
transport.stderr?.on("data", (chunk) => {
  serverLog += chunk.toString();
});
const client = new Client({ name: "warden-test-client", version: "1.0.0" });

const summary = { checks: {} };

// A call's outcome: its result, or the error it threw (an McpError carries the JSON-RPC
// code). Results keep only what the test looks at.
async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, code: e.code ?? null, message: String(e.message ?? e) };
  }
}

async function tool(name, args) {
  const r = await attempt(() => client.callTool({ name, arguments: args }));
  if (!r.ok) return r;
  const v = r.value;
  return {
    ok: true,
    isError: v.isError === true,
    structured: v.structuredContent ?? null,
    text: (v.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n"),
  };
}

const started = Date.now();
await client.connect(transport);
summary.initialize_ms = Date.now() - started;
summary.server = client.getServerVersion();
summary.capabilities = client.getServerCapabilities();
summary.instructions = client.getInstructions() ?? null;
summary.ping = await attempt(() => client.ping());

const listed = await client.listTools();
summary.tools = Object.fromEntries(
  listed.tools.map((t) => [
    t.name,
    {
      input: t.inputSchema,
      output: t.outputSchema ?? null,
      readOnly: t.annotations?.readOnlyHint ?? null,
    },
  ]),
);

const c = summary.checks;
c.echo = await tool("run_command", { command: "echo hello; echo oops >&2" });
c.exit3 = await tool("run_command", { command: "exit 3" });
c.argv = await tool("run_command", { argv: ["printf", "%s-%s", "a", "b"] });
c.env_workdir = await tool("run_command", {
  command: 'printf "%s %s" "$GREETING" "$(pwd)"',
  env: { GREETING: "hi" },
  workdir: "/tmp",
});
c.not_found = await tool("run_command", { argv: ["/no/such/program"] });
c.timeout = await tool("run_command", { command: "sleep 30", timeout_s: 1 });
c.big_output = await tool("run_command", { command: "head -c 3000000 /dev/zero | tr '\\0' x" });

const text = "héllo, wörld ✓\nsecond line\n";
c.write = await tool("write_file", { path: "/tmp/work/sub/hello.txt", content: text });
c.write_mode = await tool("write_file", {
  path: "/tmp/work/run.sh",
  content: "#!/bin/sh\necho ran\n",
  mode: "0755",
});
c.read = await tool("read_file", { path: "/tmp/work/sub/hello.txt" });
c.read_back_in_sandbox = await tool("run_command", {
  command: "cat /tmp/work/sub/hello.txt && /tmp/work/run.sh && stat -c %U /tmp/work/run.sh",
});
c.read_truncated = await tool("read_file", { path: "/tmp/work/sub/hello.txt", max_bytes: 5 });
c.list = await tool("list_files", { path: "/tmp/work" });
c.read_missing = await tool("read_file", { path: "/tmp/no/such/file" });
c.list_missing = await tool("list_files", { path: "/no/such/dir" });
c.read_dir = await tool("read_file", { path: "/tmp/work" });
c.write_readonly = await tool("write_file", { path: "/usr/warden-mcp-test", content: "x" });

// A symlink the sandbox plants must resolve inside the sandbox, never to the host's file.
c.plant = await tool("run_command", { command: "ln -s /etc/shadow /tmp/s && ls -l /tmp/s" });
c.symlink_read = await tool("read_file", { path: "/tmp/s" });
c.dotdot_read = await tool("read_file", { path: "/../../../../etc/shadow" });
c.shadow_direct = await tool("read_file", { path: "/etc/shadow" });
let hostShadow = null;
try {
  hostShadow = readFileSync("/etc/shadow", "utf8");
} catch {
  // not root: nothing to compare with
}
const leaked = (r) =>
  hostShadow !== null &&
  hostShadow.length > 0 &&
  (r.text?.includes(hostShadow.split("\n")[0]) ||
    r.structured?.content?.includes(hostShadow.split("\n")[0]) ||
    false);
summary.host_shadow_readable = hostShadow !== null;
summary.shadow_leaked =
  leaked(c.symlink_read) || leaked(c.dotdot_read) || leaked(c.shadow_direct);

c.invalid_type = await tool("read_file", { path: 42 });
c.invalid_relative = await tool("read_file", { path: "etc/passwd" });
c.invalid_missing = await tool("write_file", { path: "/tmp/x" });
c.invalid_both = await tool("run_command", { command: "true", argv: ["true"] });
c.invalid_extra = await tool("list_files", { path: "/", recursive: true });
c.invalid_timeout = await tool("run_command", { command: "true", timeout_s: -1 });
c.unknown_tool = await tool("no_such_tool", {});
c.after_errors = await tool("run_command", { command: "echo still here" });

const closing = Date.now();
await client.close();
summary.close_ms = Date.now() - closing;
summary.server_log = serverLog;
process.stdout.write(JSON.stringify(summary) + "\n");
