//! Shipping node truth to the aggregator: the durable event queue that
//! makes event delivery at-least-once across aggregator restarts, network
//! cuts and agent restarts.

pub mod health;
pub mod queue;
pub mod refs;
pub mod stream;
