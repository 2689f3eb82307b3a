//! OpenCLIP-exact CLIP in Candle (see the crate description). Filled in by the tic-model issue.
