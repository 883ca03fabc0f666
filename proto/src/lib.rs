//! gpuscope's wire contract, package `gpuscope.v1`.
//!
//! The `.proto` files under `proto/` are the source of truth and the API
//! reference; this crate is their generated Rust form.

/// Messages of `gpuscope.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/gpuscope.v1.rs"));
}
