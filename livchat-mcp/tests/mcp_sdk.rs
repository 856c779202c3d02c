//! `livchat-mcp` driven by a real MCP client, the official Python SDK (`mcp`, pinned in
//! `cargo xtask setup`), over stdio and streamable HTTP: the tool list with its schemas and
//! annotations, read tools whose `structuredContent` the SDK validates against their
//! `outputSchema` (`server_show` and `app_deployed` of a server with an app among them), bad
//! input as tool errors that change nothing, destructive tools that only plan without
//! `confirm: true`, `job_wait` notified of progress and returning at its deadline, hostile
//! `server_exec` argv and output cut at its bound over a real sshd, no secret value in any
//! result, long tools returning at `max_wait_secs`, and the bearer token and Host allowlist in
//! front of HTTP.
//! The client script is `tests/mcp_client.py`.

mod mcp_sdk {
    pub mod support;

    mod exec;
    mod http;
    mod jobs;
    mod tools;
}
