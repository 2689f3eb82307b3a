//! TiC-CLIP dataset-creation tools (see the crate description). Filled in by the tic-splits issue.
