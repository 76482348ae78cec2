//! Small rendering helpers: one-row sparklines, column fitting, truncation.

use unicode_width::UnicodeWidthStr;

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const ASCII: [char; 8] = ['_', '.', '-', '~', '=', '+', '*', '#'];

/// A one-row sparkline of the last `width` values scaled to `0..=max` (auto when
/// `None`). Missing history is left blank on the left.
pub fn sparkline(values: &[f64], width: usize, max: Option<f64>, ascii: bool) -> String {
    if width == 0 {
        return String::new();
    }
    let glyphs = if ascii { &ASCII } else { &BLOCKS };
    let tail = values.get(values.len().saturating_sub(width)..).unwrap_or_default();
    let top = max.unwrap_or_else(|| tail.iter().cloned().fold(0.0, f64::max)).max(1e-9);
    let mut s = String::with_capacity(width * 3);
    for _ in tail.len()..width {
        s.push(' ');
    }
    for v in tail {
        let idx = ((v.max(0.0) / top) * 7.0).round().clamp(0.0, 7.0) as usize;
        s.push(glyphs.get(idx).copied().unwrap_or(' '));
    }
    s
}

/// Cut a string to `width` columns, with `…` when cut.
pub fn truncate(s: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    if s.width() <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// A column of a table: header, wish width, minimum width, priority (lower is
/// dropped last).
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub title: &'static str,
    pub width: u16,
    pub min: u16,
    pub priority: u8,
    /// Sort hotkey (Shift + letter), if sortable.
    pub sort_key: Option<char>,
}

pub const fn col(title: &'static str, width: u16, min: u16, priority: u8, sort_key: Option<char>) -> Col {
    Col { title, width, min, priority, sort_key }
}

/// Which columns fit in `total` width (one space between columns), dropping the
/// lowest priorities first, and their widths.
pub fn fit(cols: &[Col], total: u16) -> Vec<(usize, u16)> {
    let mut keep: Vec<(usize, &Col)> = cols.iter().enumerate().collect();
    // The most important columns (priority 0 and 1) keep their wished width; the
    // others may shrink to their minimum before the least important are dropped.
    let need_of = |c: &Col| if c.priority <= 1 { c.width.max(c.min) } else { c.min };
    loop {
        let need: u16 = keep.iter().map(|(_, c)| need_of(c)).sum::<u16>() + keep.len().saturating_sub(1) as u16;
        if need <= total || keep.len() <= 1 {
            break;
        }
        let Some((_, drop)) = keep.iter().map(|(i, c)| (c.priority, *i)).max() else { break };
        keep.retain(|(i, _)| *i != drop);
    }
    let mut widths: Vec<(usize, &Col, u16)> = keep.iter().map(|(i, c)| (*i, *c, c.min)).collect();
    let mut spare =
        total.saturating_sub(widths.iter().map(|w| w.2).sum::<u16>() + widths.len().saturating_sub(1) as u16);
    // Grow the most important columns to their wish first.
    let mut order: Vec<(u8, usize)> = widths.iter().enumerate().map(|(k, w)| (w.1.priority, k)).collect();
    order.sort();
    for (_, k) in order {
        if let Some(w) = widths.get_mut(k) {
            let add = w.1.width.saturating_sub(w.2).min(spare);
            w.2 += add;
            spare -= add;
        }
    }
    // What is left goes to the column that wished to be widest.
    if let Some(w) = widths.iter_mut().max_by_key(|w| (w.1.width, std::cmp::Reverse(w.0))) {
        w.2 += spare;
    }
    widths.into_iter().map(|(i, _, w)| (i, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_and_pad() {
        assert_eq!(sparkline(&[0.0, 50.0, 100.0], 5, Some(100.0), false), "  ▁▅█");
        assert_eq!(sparkline(&[0.0, 100.0], 2, Some(100.0), true), "_#");
        assert_eq!(sparkline(&[], 3, None, false), "   ");
        assert_eq!(sparkline(&[1.0; 10], 4, None, false).chars().count(), 4);
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn narrow_terminals_drop_low_priority_columns() {
        let cols = [col("NAME", 20, 8, 0, None), col("STATUS", 8, 6, 0, None), col("IMAGE", 20, 10, 5, None)];
        let w = fit(&cols, 80);
        assert_eq!(w.len(), 3);
        assert_eq!(w.iter().map(|x| x.1).sum::<u16>() + 2, 80);
        let w = fit(&cols, 30);
        assert_eq!(w.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1], "the least important goes first");
        assert_eq!(w[0].1, 21, "important columns keep their width");
        assert_eq!(fit(&cols, 1).len(), 1);
    }
}
