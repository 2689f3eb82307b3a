//! Continual CLIP training (see the crate description). Filled in by the tic-train issue.
