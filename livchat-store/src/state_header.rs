//! The first lines of `state.json` as this store writes them (`version`, `serial`, `lineage`,
//! in that order, pretty-printed; the serial is checked for shape, not kept), read without reading the rest: enough for a command that
//! needs only the settings or a job to know the file is of the current version, without
//! parsing a state of a thousand servers. A file whose start has any other shape (edited by
//! hand, written by another tool) gives `None`, and the caller takes the full read.

use std::io::Read;
use std::path::Path;

use uuid::Uuid;

use crate::error::StoreError;

/// What the start of a state file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) version: u64,
    pub(crate) lineage: Uuid,
}

/// Longer than the header ever is (three short lines), short enough to cost one read.
const PEEK_BYTES: usize = 256;

/// Reads the header of the state file at `path`; `NotInitialized` when there is none.
pub(crate) fn peek(path: &Path) -> Result<Option<Header>, StoreError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotInitialized {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(StoreError::io(path, "read", e)),
    };
    let mut buf = Vec::with_capacity(PEEK_BYTES);
    (&mut file)
        .take(PEEK_BYTES as u64)
        .read_to_end(&mut buf)
        .map_err(|e| StoreError::io(path, "read", e))?;
    Ok(parse(&buf))
}

/// Parses `{\n  "version": N,\n  "serial": N,\n  "lineage": "UUID",` exactly.
pub(crate) fn parse(bytes: &[u8]) -> Option<Header> {
    // The peek may end inside a multi-byte character far past the header.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
    };
    let rest = text.strip_prefix("{\n  \"version\": ")?;
    let (version, rest) = number(rest)?;
    let rest = rest.strip_prefix(",\n  \"serial\": ")?;
    let (_serial, rest) = number(rest)?;
    let rest = rest.strip_prefix(",\n  \"lineage\": \"")?;
    let (lineage, rest) = rest.split_once('"')?;
    rest.starts_with(",\n").then_some(())?;
    Some(Header {
        version,
        lineage: Uuid::parse_str(lineage).ok()?,
    })
}

fn number(text: &str) -> Option<(u64, &str)> {
    let end = text.find(|c: char| !c.is_ascii_digit())?;
    Some((text[..end].parse().ok()?, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn the_header_of_a_file_this_store_writes_is_read() {
        let mut state = State::new();
        state.serial = 41;
        let bytes = serde_json::to_vec_pretty(&state).unwrap();
        let header = parse(&bytes[..PEEK_BYTES.min(bytes.len())]).unwrap();
        assert_eq!(
            header,
            Header {
                version: u64::from(crate::STATE_VERSION),
                lineage: state.lineage
            }
        );
    }

    #[test]
    fn any_other_shape_is_not_a_header() {
        let state = State::new();
        let compact = serde_json::to_vec(&state).unwrap();
        let reordered = format!(
            "{{\n  \"serial\": 1,\n  \"version\": 4,\n  \"lineage\": \"{}\",\n",
            state.lineage
        );
        for bytes in [
            &compact[..],
            reordered.as_bytes(),
            b"{\n  \"version\": 4,\n  \"serial\": -1,\n",
            b"{\n  \"version\": 4,\n  \"serial\": 1,\n  \"lineage\": \"not-a-uuid\",\n",
            b"",
        ] {
            assert_eq!(parse(bytes), None, "{}", String::from_utf8_lossy(bytes));
        }
    }
}
