//! The run API's JSON-lines files use the crate's [JSONL module](crate::jsonl): these are
//! its `append` and `read` under the names the run API has always had.

pub use crate::jsonl::{append as append_jsonl, read as read_jsonl};
