//! Small renderers for people: relative times. Byte sizes, sparklines,
//! tables and event lines come from `gpuscope_model::text`, which the
//! agent prints from too, so every tool prints the same units.

use gpuscope_model::Timestamp;

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(t: Timestamp) -> String {
    let d = Timestamp::now().since(t).as_secs();
    match d {
        0..=59 => format!("{d}s ago"),
        60..=3599 => format!("{}m ago", d / 60),
        3600..=86_399 => format!("{}h ago", d / 3600),
        _ => format!("{}d ago", d / 86_400),
    }
}
