//! Small renderers for people: relative times and sparklines. Byte sizes
//! and tables come from the agent's `output` module, so both tools print
//! the same units.

use gpuscope_agent::model::Timestamp;

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

/// A sparkline of `values`, scaled from 0 to `max` (or to the largest
/// value when `max` is `None`).
pub fn sparkline(values: &[u64], max: Option<u64>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = max
        .or_else(|| values.iter().copied().max())
        .unwrap_or(1)
        .max(1);
    values
        .iter()
        .map(|&v| BARS[((v.min(top) * 7 + top / 2) / top) as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_limit() {
        assert_eq!(sparkline(&[0, 32, 64], Some(64)), "▁▅█");
        assert_eq!(sparkline(&[1, 2], None), "▅█");
        assert_eq!(sparkline(&[], Some(1)), "");
    }
}
