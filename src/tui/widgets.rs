//! Small rendering helpers: one-row sparklines, column fitting, and cutting text
//! to a width: whatever is cut ends with an ellipsis (`…`, `~` in `--ascii`), so
//! nothing on screen is cut mid-word without a mark.

use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

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

/// The mark of a cut: `…`, or `~` where the terminal is not trusted with Unicode.
pub fn ellipsis(ascii: bool) -> char {
    if ascii {
        '~'
    } else {
        '…'
    }
}

/// Cut a string to `width` columns, ending with the ellipsis when cut.
pub fn truncate(s: &str, width: usize, ascii: bool) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    mark_cut(s, width, ascii)
}

/// The first `width - 1` columns of `s` and the ellipsis (the cut is there even
/// when `s` would fit: something follows it that does not).
fn mark_cut(s: &str, width: usize, ascii: bool) -> String {
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push(ellipsis(ascii));
    out
}

/// A line cut to `width` columns: the spans that fit, the one that does not cut
/// with the ellipsis (in its own style), nothing after it. Trailing blanks are
/// dropped without a mark: nothing is hidden there.
pub fn clip_line(line: Line<'static>, width: usize, ascii: bool) -> Line<'static> {
    if line.width() <= width {
        return line;
    }
    let Line { spans, style, alignment } = line;
    let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
    let blank_tail = text.trim_end().width() <= width;
    let mut out: Vec<Span<'static>> = Vec::with_capacity(spans.len());
    let mut used = 0;
    for s in spans {
        let w = s.width();
        if used + w <= width {
            used += w;
            out.push(s);
            continue;
        }
        let room = width.saturating_sub(used);
        if blank_tail {
            let kept: String = s
                .content
                .chars()
                .scan(0, |acc, c| {
                    *acc += c.width().unwrap_or(0);
                    (*acc <= room).then_some(c)
                })
                .collect();
            out.push(Span::styled(kept, s.style));
        } else if room > 0 {
            out.push(Span::styled(truncate(&s.content, room, ascii), s.style));
        } else if let Some(last) = out.last_mut() {
            // Not a column left: the span before gives its last one to the mark.
            *last = Span::styled(mark_cut(&last.content, last.width(), ascii), last.style);
        }
        break;
    }
    let mut l = Line::from(out).style(style);
    l.alignment = alignment;
    l
}

/// A styled line wrapped at words into lines of at most `width` columns, the
/// lines after the first indented by `indent` spaces; every word keeps its style,
/// and a word longer than a line is cut with the ellipsis.
pub fn wrap_line(line: Line<'static>, width: usize, indent: usize, ascii: bool) -> Vec<Line<'static>> {
    if line.width() <= width {
        return vec![line];
    }
    let indent = if indent * 2 >= width { 0 } else { indent };
    let mut words: Vec<(String, ratatui::style::Style)> = Vec::new();
    let mut lead = String::new();
    for s in &line.spans {
        let mut text: &str = &s.content;
        if words.is_empty() {
            let trimmed = text.trim_start_matches(' ');
            lead.push_str(&" ".repeat(text.len() - trimmed.len()));
            text = trimmed;
        }
        words.extend(text.split(' ').filter(|w| !w.is_empty()).map(|w| (w.to_string(), s.style)));
    }
    let mut out: Vec<Line<'static>> = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut cur_w = 0;
    for (word, style) in words {
        let ww = word.width();
        if !cur.is_empty() && cur_w + 1 + ww <= width {
            cur.push(Span::styled(format!(" {word}"), style));
            cur_w += 1 + ww;
            continue;
        }
        let prefix = if out.is_empty() && cur.is_empty() { lead.clone() } else { " ".repeat(indent) };
        if !cur.is_empty() {
            out.push(Line::from(std::mem::take(&mut cur)));
        }
        let room = width.saturating_sub(prefix.width());
        let cut = truncate(&word, room, ascii);
        cur_w = prefix.width() + cut.width();
        cur.push(Span::raw(prefix));
        cur.push(Span::styled(cut, style));
    }
    if !cur.is_empty() {
        out.push(Line::from(cur));
    }
    out
}

/// Cut a string to `width` columns from the left (`…` first): for paths, whose
/// end says the most.
pub fn truncate_left(s: &str, width: usize, ascii: bool) -> String {
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        kept.push(c);
        w += cw;
    }
    std::iter::once(ellipsis(ascii)).chain(kept.into_iter().rev()).collect()
}

/// A column of a table: header, wished width, minimum width, and its rank
/// (`priority`): columns are kept in rank order, 0 first, so the highest rank is
/// the first dropped on a narrow terminal. Ranks are unique within a table (each
/// table's list says its order).
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

/// Which columns fit in `total` width (one space between columns) and their
/// widths, in table order. Columns are taken in rank order; one is shown only
/// when every column ranked before it has its wished width and it has at least
/// its minimum; the first column that does not fit ends the table (no lower rank
/// is shown in its place). The space left widens the kept columns in rank order
/// up to their wish, and the rest goes to the column that wished to be widest.
pub fn fit(cols: &[Col], total: u16) -> Vec<(usize, u16)> {
    let mut order: Vec<(u8, usize, &Col)> = cols.iter().enumerate().map(|(i, c)| (c.priority, i, c)).collect();
    crate::domain::sort::sort_by_key(&mut order, |(p, i, _)| (*p, *i));
    let mut kept: Vec<(u8, usize, &Col)> = Vec::new();
    let mut wished: u32 = 0;
    for (p, i, c) in order {
        let sep = u32::from(!kept.is_empty());
        if !kept.is_empty() && wished + sep + u32::from(c.min) > u32::from(total) {
            break;
        }
        wished += sep + u32::from(c.width.max(c.min));
        kept.push((p, i, c));
    }
    let mut widths: Vec<(usize, &Col, u16)> = kept.iter().map(|(_, i, c)| (*i, *c, c.min.min(total))).collect();
    let used: u32 = widths.iter().map(|w| u32::from(w.2)).sum::<u32>() + widths.len().saturating_sub(1) as u32;
    let mut spare = u32::from(total).saturating_sub(used) as u16;
    // In rank order (kept is), up to the wish.
    for w in widths.iter_mut() {
        let add = w.1.width.saturating_sub(w.2).min(spare);
        w.2 += add;
        spare -= add;
    }
    if let Some(w) = widths.iter_mut().max_by_key(|w| (w.1.width, std::cmp::Reverse(w.0))) {
        w.2 += spare;
    }
    crate::domain::sort::sort_by_key(&mut widths, |w| w.0);
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
        assert_eq!(truncate("abcdef", 4, false), "abc…");
        assert_eq!(truncate("abcdef", 4, true), "abc~");
        assert_eq!(truncate("abc", 4, false), "abc");
        assert_eq!(truncate("abc", 0, false), "");
        assert_eq!(truncate("日本語", 4, false), "日…", "wide characters count double");
    }

    fn text(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn lines_are_clipped_with_a_mark() {
        let l = Line::from(vec![Span::raw("ready 2/4"), Span::raw(" · 3 VMs"), Span::raw(" · 1 unhealthy")]);
        assert_eq!(text(&clip_line(l.clone(), 40, false)), "ready 2/4 · 3 VMs · 1 unhealthy");
        assert_eq!(text(&clip_line(l.clone(), 20, false)), "ready 2/4 · 3 VMs ·…");
        assert_eq!(text(&clip_line(l.clone(), 17, true)), "ready 2/4 · 3 VM~", "a span boundary at the edge");
        assert_eq!(text(&clip_line(l, 9, false)), "ready 2/…");
        let padded = Line::from(vec![Span::raw("abc"), Span::raw("      ")]);
        assert_eq!(text(&clip_line(padded, 5, false)), "abc  ", "blanks are not a cut");
    }

    #[test]
    fn styled_lines_wrap_at_words_with_their_styles() {
        use ratatui::style::{Color, Style};
        let red = Style::default().fg(Color::Red);
        let l =
            Line::from(vec![Span::styled("    autoscaler MetricsStale ", red), Span::raw("desired 2: cpu n/a now")]);
        let w = wrap_line(l, 24, 6, false);
        let texts: Vec<String> = w.iter().map(text).collect();
        assert_eq!(texts, vec!["    autoscaler", "      MetricsStale", "      desired 2: cpu n/a", "      now"]);
        assert!(w.iter().all(|l| l.width() <= 24));
        assert_eq!(w[1].spans.last().map(|s| s.style), Some(red), "words keep their style");
        assert_eq!(w[2].spans.last().map(|s| s.style), Some(Style::default()));
        let long = wrap_line(Line::from("see policies/a-very-long-file-name.toml now"), 16, 2, false);
        assert_eq!(long.iter().map(text).collect::<Vec<_>>(), vec!["see", "  policies/a-ve…", "  now"]);
    }

    #[test]
    fn paths_are_cut_from_the_left() {
        assert_eq!(truncate_left("/var/lib/stackpilot/policies/web.toml", 18, false), "…policies/web.toml");
        assert_eq!(truncate_left("web.toml", 18, false), "web.toml");
        assert_eq!(truncate_left("abcdef", 3, true), "~ef");
    }

    #[test]
    fn narrow_terminals_drop_the_last_ranked_columns_first() {
        let cols = [col("NAME", 20, 8, 0, None), col("STATUS", 8, 6, 1, None), col("IMAGE", 20, 10, 2, None)];
        let w = fit(&cols, 80);
        assert_eq!(w.len(), 3);
        assert_eq!(w.iter().map(|x| x.1).sum::<u16>() + 2, 80, "the whole width is used");
        let w = fit(&cols, 30);
        assert_eq!(w.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1], "the last ranked goes first");
        assert_eq!(w[0].1, 21, "kept columns have their wish, the rest to the widest");
        assert_eq!(fit(&cols, 1), vec![(0, 1)], "one column at least, never wider than the screen");
        // A column is shown only when those before it have their wish.
        let w = fit(&cols, 36);
        assert_eq!(w.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
        let w = fit(&cols, 40);
        assert_eq!(w, vec![(0, 20), (1, 8), (2, 10)]);
        // Table order is kept whatever the ranks.
        let cols = [col("A", 5, 5, 2, None), col("B", 5, 5, 0, None), col("C", 5, 5, 1, None)];
        assert_eq!(fit(&cols, 11).iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(fit(&cols, 17).iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
