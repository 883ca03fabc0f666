//! Sources: each module owns one kind of kernel file.
pub mod cgroup;
pub mod gpu;
pub mod kmsg;
pub mod node;
pub mod parse;
pub mod procs;
pub mod psi;
pub mod xid;
