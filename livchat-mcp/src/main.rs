//! `livchat-mcp`, the MCP server frontend over `livchat-core`.
//!
//! Must not touch: any leaf crate directly. Not implemented yet: no issue has asked for it, and
//! this binary says so instead of pretending.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("livchat-mcp is not implemented yet; use the `livchat` CLI")
}
