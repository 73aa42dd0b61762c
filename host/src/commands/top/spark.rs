//! Sparklines as text: one character a value, eight heights.
//!
//! `vigil status --wide` prints them; `vigil top` draws ratatui's widget,
//! scaled the same way ([`scale`]).

/// The eight heights, lowest first.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The last `width` values as bars, scaled between 0 and the largest one
/// shown (latencies: 0 is the honest floor, so a flat 1 ms line is not
/// drawn as wild swings between 0.9 and 1.1 ms).
pub fn text(values: &[f64], width: usize) -> String {
    let shown = &values[values.len().saturating_sub(width)..];
    scale(shown, BARS.len() as u64 - 1)
        .into_iter()
        .map(|h| BARS[h as usize])
        .collect()
}

/// Each value as 0..=`top`, proportional to the largest (non-finite or
/// negative values as 0).
pub fn scale(values: &[f64], top: u64) -> Vec<u64> {
    let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let max = values.iter().copied().map(clean).fold(0.0, f64::max);
    values
        .iter()
        .map(|&v| {
            if max == 0.0 {
                0
            } else {
                ((clean(v) / max) * top as f64).round() as u64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_shown() {
        assert_eq!(text(&[], 10), "");
        assert_eq!(text(&[0.0, 0.0], 10), "▁▁");
        assert_eq!(text(&[1.0, 2.0, 4.0, 8.0], 10), "▂▃▅█");
        // Only the last `width` count, for the scale too.
        assert_eq!(text(&[100.0, 1.0, 1.0], 2), "██");
        assert_eq!(text(&[f64::NAN, -1.0, 2.0], 3), "▁▁█");
        assert_eq!(scale(&[1.0, 2.0], 100), vec![50, 100]);
    }
}
