//! tic-shards: WebDataset shard I/O shared by every tic-rs crate.
