//! Zero-shot evaluation and dynamic metrics (see the crate description). Filled in by the tic-eval issue.
