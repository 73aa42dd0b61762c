//! The example loader checks/examples/loaders/src/bin/backoff_jitter.rs, built as a
//! test program so the end-to-end tests replay it.

include!("../../../../checks/examples/loaders/src/bin/backoff_jitter.rs");
