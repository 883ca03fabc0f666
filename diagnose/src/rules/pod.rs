//! Rules of this family (being written).

use serde::{Deserialize, Serialize};

use crate::Context;
use crate::finding::Finding;

/// Thresholds of this family.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {}

/// Every finding of this family.
pub(crate) fn run(_ctx: &Context<'_>) -> Vec<Finding> {
    Vec::new()
}
