"""A real MCP client (the official Python SDK) driving `livchat-mcp`, for `tests/mcp_sdk.rs`.

Usage: python3 mcp_client.py SCENARIO < config.json; prints one JSON report on stdout and
exits non-zero with the failed check on stderr. The SDK itself checks every successful tool
result's `structuredContent` against the tool's `outputSchema` (`ClientSession.call_tool`).
"""

import json
import sys

import anyio
import httpx2
from jsonschema import Draft202012Validator
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

TOOLS = [
    "server_list", "server_show", "server_add", "server_create", "server_setup",
    "server_delete", "server_join", "server_leave", "server_exec", "server_dns_update",
    "server_set_platform", "app_list", "app_show",
    "app_render", "app_deploy", "app_undeploy", "app_deployed", "app_status", "app_logs",
    "job_list", "job_show",
    "job_logs", "job_wait", "job_cancel", "job_retry", "provider_info", "dns_list",
    "settings_get", "settings_set", "secret_names", "secret_set", "secret_delete",
]
READ = {
    "server_list", "server_show", "app_list", "app_show", "app_render", "app_deployed",
    "app_status", "app_logs", "job_list", "job_show", "job_logs", "job_wait", "provider_info", "dns_list",
    "settings_get", "secret_names",
}
DESTRUCTIVE = {"server_delete", "app_undeploy", "secret_delete"}
LONG = {
    "server_create", "server_setup", "app_deploy", "app_undeploy", "server_delete", "job_retry",
    "server_join", "server_leave",
}
OPEN_WORLD = {
    "server_add", "server_create", "server_setup", "server_delete", "server_exec",
    "server_join", "server_leave", "server_dns_update", "app_deploy", "app_undeploy", "provider_info", "dns_list", "job_retry",
    "app_status", "app_logs",
}


class Check(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Check(what)


def dump(result):
    return json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def call_ok(session, name, args, seen):
    result = await session.call_tool(name, args)
    seen.append(dump(result))
    check(not result.is_error, f"{name}({args}) failed: {text_of(result)}")
    check(result.structured_content is not None, f"{name} returned no structuredContent")
    check(text_of(result).strip() != "", f"{name} returned no text content")
    return result.structured_content


async def call_err(session, name, args, seen):
    result = await session.call_tool(name, args)
    seen.append(dump(result))
    check(result.is_error, f"{name}({args}) should have failed: {dump(result)}")
    return text_of(result)


def stdio(cfg):
    env = {"LIVCHAT_HOME": cfg["home"], **cfg.get("env", {})}
    return stdio_client(StdioServerParameters(command=cfg["bin"], args=cfg.get("args", []), env=env))


async def scenario_tools(session, cfg):
    listed = await session.list_tools()
    raw = json.dumps(listed.model_dump(mode="json", by_alias=True, exclude_none=True),
                     separators=(",", ":"))
    names = [t.name for t in listed.tools]
    check(sorted(names) == sorted(TOOLS), f"tools differ: {sorted(set(names) ^ set(TOOLS))}")
    for t in listed.tools:
        Draft202012Validator.check_schema(t.input_schema)
        check(t.input_schema.get("type") == "object", f"{t.name} input is not an object")
        check(t.output_schema is not None, f"{t.name} has no outputSchema")
        Draft202012Validator.check_schema(t.output_schema)
        check(t.output_schema.get("type") == "object", f"{t.name} output is not an object")
        # The title is in the annotations, where clients of every protocol version read it.
        check(t.annotations and t.annotations.title and t.description,
              f"{t.name} lacks a title or description")
        check("\n" not in t.description.strip(), f"{t.name} description is not one line")
        a = t.annotations
        check(a is not None, f"{t.name} has no annotations")
        check(a.read_only_hint == (t.name in READ), f"{t.name} readOnlyHint {a.read_only_hint}")
        if t.name not in READ:
            check(a.destructive_hint == (t.name in DESTRUCTIVE),
                  f"{t.name} destructiveHint {a.destructive_hint}")
            check(a.idempotent_hint is not None, f"{t.name} has no idempotentHint")
        check(a.open_world_hint == (t.name in OPEN_WORLD), f"{t.name} openWorldHint {a.open_world_hint}")
        props = t.input_schema.get("properties", {})
        if t.name not in READ:
            check("plan" in props, f"{t.name} does not accept plan")
        check(("confirm" in props) == (t.name in DESTRUCTIVE), f"{t.name} confirm property")
        check(("max_wait_secs" in props) == (t.name in LONG), f"{t.name} max_wait_secs property")
    argv = next(t for t in listed.tools if t.name == "server_exec").input_schema["properties"]["argv"]
    check(argv.get("type") == "array", f"server_exec argv is not an array: {argv}")
    sizes = {t.name: [len(json.dumps(t.input_schema, separators=(",", ":"))),
                      len(json.dumps(t.output_schema, separators=(",", ":")))] for t in listed.tools}
    return {"tools": len(names), "tools_list_bytes": len(raw.encode()), "schema_bytes": sizes}


async def scenario_reads(session, cfg):
    """Every read tool with valid arguments; each result validated by the SDK and again here."""
    listed = {t.name: t for t in (await session.list_tools()).tools}
    seen, done = [], []
    for name, args in cfg["reads"]:
        content = await call_ok(session, name, args, seen)
        Draft202012Validator(listed[name].output_schema).validate(content)
        done.append(name)
    return {"called": done, "results": seen}


async def scenario_calls(session, cfg):
    """A scripted list of calls: [name, args, "ok"|"error", [substrings the text must hold]]."""
    seen, out = [], []
    for name, args, expect, needles in cfg["calls"]:
        if expect == "ok":
            out.append(await call_ok(session, name, args, seen))
        else:
            text = await call_err(session, name, args, seen)
            for needle in needles:
                check(needle in text, f"{name}({args}) error lacks {needle!r}: {text}")
            out.append(text)
    return {"outputs": out, "results": seen}


async def scenario_progress(session, cfg):
    """A long tool with a progress callback: notifications arrive and never go down."""
    events = []

    async def on_progress(progress, total, message):
        events.append({"progress": progress, "total": total, "message": message})

    seen = []
    result = await session.call_tool(cfg["tool"], cfg["tool_args"], progress_callback=on_progress)
    seen.append(dump(result))
    check(not result.is_error, f"{cfg['tool']} failed: {text_of(result)}")
    progress = [e["progress"] for e in events]
    check(progress == sorted(progress), f"progress went down: {progress}")
    check(all(e["total"] == 100 for e in events), f"total is not 100: {events}")
    return {"events": events, "result": result.structured_content, "results": seen}


async def scenario_deadline(session, cfg):
    """A long tool with a progress callback and a small `max_wait_secs`: the call returns with
    its job still going. The job is then cancelled and waited for, so none outlives the test."""
    events = []

    async def on_progress(progress, total, message):
        events.append({"progress": progress, "total": total, "message": message})

    seen = []
    # A deadline not honoured would follow the job for as long as it runs (minutes): fail here.
    with anyio.fail_after(cfg.get("timeout", 60)):
        result = await session.call_tool(cfg["tool"], cfg["tool_args"], progress_callback=on_progress)
    seen.append(dump(result))
    check(not result.is_error, f"{cfg['tool']} failed: {text_of(result)}")
    returned = result.structured_content
    job = returned["result"]["id"]
    await call_ok(session, "job_cancel", {"id": job}, seen)
    ended = await call_ok(session, "job_wait", {"id": job, "timeout_secs": 120}, seen)
    return {"events": events, "returned": returned, "ended": ended["result"], "results": seen}


async def scenario_cancel(session, cfg):
    """Starts a long tool with a progress token and abandons the call (the SDK sends
    notifications/cancelled) once a progress message contains `cancel_at`."""
    events = []
    reached = anyio.Event()

    async def on_progress(progress, total, message):
        events.append({"progress": progress, "message": message})
        if cfg["cancel_at"] in (message or ""):
            reached.set()

    async with anyio.create_task_group() as tg:
        async def call():
            await session.call_tool(cfg["tool"], cfg["tool_args"], progress_callback=on_progress)

        tg.start_soon(call)
        with anyio.fail_after(cfg.get("timeout", 600)):
            await reached.wait()
        waited = None
        if cfg.get("wait_secs"):
            waited = await wait_with_progress(session, cfg["wait_secs"])
        tg.cancel_scope.cancel()
    # The same session then waits for the job: it must end cancelled, not run on.
    seen = []
    jobs = (await call_ok(session, "job_list", {}, seen))["result"]
    ended = []
    for job in jobs:
        ended.append((await call_ok(session, "job_wait", {"id": job["id"], "timeout_secs": 120}, seen))["result"])
    return {"events": events, "jobs": ended, "waited": waited}


async def wait_with_progress(session, secs):
    """`job_wait` on the one job with a progress callback, bounded by `timeout_secs`."""
    jobs = (await call_ok(session, "job_list", {}, []))["result"]
    check(len(jobs) == 1, f"one job expected: {jobs}")
    events = []

    async def on_progress(progress, total, message):
        events.append({"progress": progress, "total": total, "message": message})

    started = anyio.current_time()
    result = await session.call_tool("job_wait", {"id": jobs[0]["id"], "timeout_secs": secs},
                                     progress_callback=on_progress)
    check(not result.is_error, f"job_wait failed: {text_of(result)}")
    return {"events": events, "result": result.structured_content["result"],
            "elapsed": anyio.current_time() - started}


async def scenario_flow(session, cfg):
    """Calls `cfg["calls"]` in order, each with a progress callback, as an assistant would run
    the main flow: every call must succeed and its progress must never go down."""
    out = []
    for call in cfg["calls"]:
        events = []

        async def on_progress(progress, total, message, events=events):
            events.append({"progress": progress, "total": total, "message": message})

        result = await session.call_tool(call["tool"], call["args"], progress_callback=on_progress)
        check(not result.is_error, f"{call['tool']}({call['args']}) failed: {text_of(result)}")
        progress = [e["progress"] for e in events]
        check(progress == sorted(progress), f"{call['tool']}: progress went down: {progress}")
        out.append({"tool": call["tool"], "events": events, "result": result.structured_content})
    return {"calls": out}


SCENARIOS = {
    "flow": scenario_flow,
    "tools": scenario_tools,
    "reads": scenario_reads,
    "calls": scenario_calls,
    "progress": scenario_progress,
    "cancel": scenario_cancel,
    "deadline": scenario_deadline,
}


async def over_stdio(name, cfg):
    async with stdio(cfg) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.server_info.name == "livchat-mcp", f"server name {init.server_info.name}")
            check(init.capabilities.tools is not None, "no tools capability")
            return await SCENARIOS[name](session, cfg)


async def over_http(name, cfg):
    url = cfg["url"]
    # Without the token (or with a wrong one) the endpoint answers 401 before MCP is reached.
    statuses = {}
    async with httpx2.AsyncClient() as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        hdrs = {"Accept": "application/json, text/event-stream"}
        statuses["none"] = (await client.post(url, json=body, headers=hdrs)).status_code
        bad = {**hdrs, "Authorization": "Bearer not-the-token"}
        statuses["wrong"] = (await client.post(url, json=body, headers=bad)).status_code
    headers = {"Authorization": f"Bearer {cfg['token']}"}
    # With the token, each Host header of `host_probes` on an initialize: the transport's
    # allowlist (DNS rebinding) answers before MCP for a name that is not loopback.
    hosts = {}
    async with httpx2.AsyncClient() as client:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "host-probe", "version": "0"}}}
        for host in cfg.get("host_probes", []):
            hdrs = {"Accept": "application/json, text/event-stream", "Host": host, **headers}
            hosts[host] = (await client.post(url, json=init, headers=hdrs)).status_code
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=600)) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                report = await SCENARIOS[name](session, cfg)
    report["unauthorized_status"] = statuses
    report["host_status"] = hosts
    return report


async def main():
    name = sys.argv[1]
    cfg = json.load(sys.stdin)
    runner = over_http if cfg.get("url") else over_stdio
    try:
        report = await runner(name, cfg)
    except Check as e:
        print(f"check failed: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(report))


if __name__ == "__main__":
    anyio.run(main)
