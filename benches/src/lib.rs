//! Shared helpers for gpuscope benchmarks.
