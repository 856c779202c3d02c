//! `livchat`, the command-line frontend: argument parsing, progress display and rendering of
//! results (table or JSON) over `livchat-core`.
//!
//! Must not touch: any leaf crate directly, SSH, clouds or files of the home directory; every
//! operation is a call into `livchat-core`. Glue code only.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("livchat: the command line is being built; see README.md")
}
