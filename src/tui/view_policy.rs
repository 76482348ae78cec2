//! Rendering of the policy views: the Policies table, an open policy (its TOML
//! highlighted, its history, its events), the quick-edit form and the review
//! of a change (effect in the engine's words, unified diff, Cancel / Apply).

use super::app::App;
use super::editing::{Form, PreviewState, Review};
use super::view::{box_title, cells_of, centered, clipped, table};
use super::widgets::{col, Col};
use crate::domain::text::sanitize;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

/// The Policies table, in its display order. Kept on a narrow terminal in rank
/// order: APP, STATE, (CLOUD), DESIRED, PROBLEM / FILE, MODE, SCALING, REV,
/// CHANGED, BY (README: "Narrow terminals").
const POLICY_COLS: [Col; 9] = [
    col("APP", 12, 6, 0, Some('N')),
    col("STATE", 13, 8, 10, Some('S')),
    col("MODE", 7, 4, 50, None),
    col("REV", 4, 3, 70, None),
    col("DESIRED", 12, 8, 20, None),
    col("SCALING", 14, 7, 60, None),
    col("CHANGED", 8, 7, 80, None),
    col("BY", 12, 6, 90, None),
    col("PROBLEM / FILE", 30, 14, 40, None),
];

/// Who changed a policy, short: the OS user, or `engine`.
fn who(actor: Option<&str>) -> String {
    match actor {
        Some(a) if a.starts_with("engine") => "engine".into(),
        Some(a) => a.strip_prefix("operator:").unwrap_or(a).to_string(),
        None => "-".into(),
    }
}

/// Every policy of the cloud and where it stands (`:policies`).
pub fn policies(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(e) = app.engine.as_ref() else {
        let msg = "  the engine is off: policies are read by the engine (set `[engine] mode` in config.toml)";
        f.render_widget(Paragraph::new(Span::styled(msg, t.dim())), area);
        return;
    };
    // Several clouds: which one each policy (or location of a placed app) is for, second.
    let several = app.shown().clouds.len() > 1;
    let mut cols = POLICY_COLS.to_vec();
    if several {
        cols.insert(1, super::view::cloud_col(app));
    }
    table(f, app, area, "policies", &cols, |id, widths| {
        let Some(p) = e.policies.iter().find(|p| p.policy_id == id) else { return vec![] };
        let (word, st) = match p.state.as_str() {
            "ok" => ("ok", t.ok()),
            "invalid" => ("PolicyInvalid", t.bad()),
            "missing" => ("PolicyMissing", t.bad()),
            _ => ("Retiring", t.warn()),
        };
        // A problem says what is wrong; a path says the most at its end.
        let what = match p.problems.first() {
            Some(pr) => pr.clone(),
            None => {
                let w = widths.iter().find(|(i, _)| cols.get(*i).is_some_and(|c| c.title == "PROBLEM / FILE"));
                super::widgets::truncate_left(&p.file, w.map_or(usize::MAX, |w| w.1 as usize), app.ascii)
            }
        };
        let mode_style = if p.app_mode == "auto" || p.app_mode.is_empty() { t.dim() } else { t.warn() };
        let mut cells = vec![
            (p.app.clone(), t.accent()),
            (word.to_string(), st),
            (if p.app_mode.is_empty() { "-".into() } else { p.app_mode.clone() }, mode_style),
            (if p.revision > 0 { p.revision.to_string() } else { "-".into() }, t.base()),
            (format!("{} ({}..{})", p.desired, p.min, p.max), t.base()),
            (p.target.clone().unwrap_or_else(|| "-".into()), t.dim()),
            (p.changed_at.map(|at| app.age_text((app.now - at).num_seconds())).unwrap_or_else(|| "-".into()), t.dim()),
            (who(p.changed_by.as_deref()), t.dim()),
            (what, if p.problems.is_empty() { t.dim() } else { t.bad() }),
        ];
        if several {
            cells.insert(1, (p.cloud.clone(), t.dim()));
        }
        cells_of(cells, widths)
    });
}

/// A policy's history, in its display order. Kept on a narrow terminal in rank
/// order: #, WHAT CHANGED, WHEN, WHO, CONTENT (README: "Narrow terminals").
const HISTORY_COLS: [Col; 5] = [
    col("#", 4, 2, 0, None),
    col("WHEN", 6, 4, 20, None),
    col("WHO", 10, 3, 30, None),
    col("CONTENT", 8, 7, 40, None),
    col("WHAT CHANGED", 30, 12, 10, None),
];

/// TOML, coloured by line: comments, tables, keys, strings (multi-line ones too).
fn highlight(app: &App, text: &str, max: usize) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut in_string = false;
    let mut out = Vec::new();
    for raw in text.lines().take(max) {
        let l = sanitize(raw).into_owned();
        let trimmed = l.trim_start();
        let quotes = l.matches("\"\"\"").count();
        let line = if in_string {
            Line::from(Span::styled(l.clone(), t.ok()))
        } else if trimmed.starts_with('#') {
            Line::from(Span::styled(l.clone(), t.dim()))
        } else if trimmed.starts_with('[') {
            Line::from(Span::styled(l.clone(), t.accent().add_modifier(Modifier::BOLD)))
        } else if let Some((k, v)) = l.split_once('=') {
            let vs = if v.trim_start().starts_with('"') { t.ok() } else { t.warn() };
            Line::from(vec![
                Span::styled(k.to_string(), t.accent()),
                Span::styled("=", t.dim()),
                Span::styled(v.to_string(), vs),
            ])
        } else {
            Line::from(Span::styled(l.clone(), t.base()))
        };
        if quotes % 2 == 1 {
            in_string = !in_string;
        }
        out.push(line);
    }
    out
}

/// A box `width` wide, its title cut with the ellipsis when longer.
fn boxed<'a>(app: &App, title: String, width: u16) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(app.theme.dim())
        .title(Span::styled(box_title(app, &title, width), app.theme.title()))
}

/// An open policy: its file, its history, its recent events.
pub fn policy_detail(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let v = app.view();
    let id = v.policy.clone().unwrap_or_default();
    let pv = app.engine.as_ref().and_then(|e| e.policies.iter().find(|p| p.policy_id == id));
    let doc = app.docs.get(&id);
    let name = pv.map(|p| p.app.clone()).or_else(|| doc.map(|d| d.app.clone())).unwrap_or_default();
    let (text_area, side) = if area.width >= 110 {
        let [a, b] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(area);
        (a, b)
    } else {
        let [a, b] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
        (a, b)
    };
    let [hist_area, ev_area] = Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(side);
    // The file, highlighted, with where the policy stands on top.
    let mut lines: Vec<Line> = Vec::new();
    if let Some(p) = pv {
        let state = match p.state.as_str() {
            "ok" => Span::styled("ok", t.ok()),
            s => Span::styled(s.to_string(), t.bad()),
        };
        lines.push(Line::from(vec![
            Span::styled(" state ", t.dim()),
            state,
            Span::styled(format!("  revision {}  mode {}", p.revision, p.app_mode), t.dim()),
        ]));
        for pr in &p.problems {
            lines.push(Line::from(Span::styled(format!(" {}", sanitize(pr)), t.bad())));
        }
    }
    let file = doc.map(|d| d.file.display().to_string()).or_else(|| pv.map(|p| p.file.clone())).unwrap_or_default();
    match doc.map(|d| &d.text) {
        None => lines.push(Line::from(Span::styled(" reading the file…", t.dim()))),
        Some(Err(e)) => lines.push(Line::from(Span::styled(format!(" {file}: {}", sanitize(e)), t.bad()))),
        Some(Ok(text)) => lines.extend(highlight(app, text, text_area.height as usize)),
    }
    let keys = [super::keymap::Action::QuickEdit, super::keymap::Action::EditPolicy]
        .iter()
        .filter_map(|a| app.keymap.hint(*a).map(|k| format!("{k}:{}", super::keymap::info_of(*a).name)))
        .collect::<Vec<_>>()
        .join("  ");
    // The keys only when they fit: the footer names them too.
    let title = format!("policy {name} — {file}");
    let with_keys = format!("{title} — {keys}");
    let title =
        if keys.is_empty() || with_keys.chars().count() + 4 > text_area.width as usize { title } else { with_keys };
    let lines = clipped(app, lines, text_area.width.saturating_sub(2));
    f.render_widget(Paragraph::new(lines).block(boxed(app, title, text_area.width)), text_area);
    // The history (the view's rows).
    let marked = app.marked_change;
    table(f, app, hist_area, "history (m marks, d diffs)", &HISTORY_COLS, |gid, widths| {
        let Some(c) = doc.and_then(|d| d.history.iter().find(|c| c.generation.to_string() == gid)) else {
            return vec![];
        };
        let mark = if marked == Some(c.generation) { "*" } else { "" };
        let hash: String = c.content_hash.chars().take(8).collect();
        cells_of(
            vec![
                (format!("{}{mark}", c.generation), t.accent()),
                (app.age_text((app.now - c.at).num_seconds()), t.dim()),
                (who(c.actor.as_deref()), t.base()),
                (hash, t.dim()),
                (c.summary.clone().unwrap_or_else(|| "-".into()), t.base()),
            ],
            widths,
        )
    });
    if let Some(e) = doc.and_then(|d| d.history_error.as_ref()) {
        let r = Rect { y: hist_area.bottom().saturating_sub(2), height: 1.min(hist_area.height), ..hist_area };
        let line = Line::from(Span::styled(format!("  {}", sanitize(e)), t.bad()));
        f.render_widget(Paragraph::new(clipped(app, vec![line], r.width)), r);
    }
    // Its recent events.
    let evs: Vec<Line> = app
        .events
        .iter()
        .filter(|e| e.app.as_deref() == Some(name.as_str()))
        .take(ev_area.height.saturating_sub(2) as usize)
        .map(|e| {
            Line::from(vec![
                Span::styled(format!("{} ", e.at.format("%H:%M:%S")), t.dim()),
                Span::styled(format!("{} ", e.action), t.accent()),
                Span::styled(format!("{} ", who(Some(&e.actor))), t.dim()),
                Span::raw(sanitize(&e.reason).into_owned()),
            ])
        })
        .collect();
    let evs = clipped(app, evs, ev_area.width.saturating_sub(2));
    f.render_widget(Paragraph::new(evs).block(boxed(app, format!("events of {name}"), ev_area.width)), ev_area);
}

/// The quick-edit form.
pub fn form(f: &mut Frame, app: &App, area: Rect, form: &Form) {
    let t = &app.theme;
    let cloud = app.shown().clouds.iter().find(|c| c.name == form.cloud);
    let mut lines: Vec<Line> = vec![Line::from("")];
    for (i, fl) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let changed = fl.input.value().trim() != fl.original;
        let marker = if focused { Span::styled(" ▶ ", t.accent()) } else { Span::raw("   ") };
        let label_style = if focused { t.accent().add_modifier(Modifier::BOLD) } else { t.dim() };
        let value_style = if fl.error.is_some() {
            t.bad()
        } else if changed {
            t.warn().add_modifier(Modifier::BOLD)
        } else {
            t.base()
        };
        let mut spans = vec![
            marker,
            Span::styled(format!("{:<16}", fl.label), label_style),
            Span::styled(sanitize(fl.input.value()).into_owned(), value_style),
        ];
        if focused {
            spans.push(Span::styled("▏", t.accent()));
        }
        if changed && fl.error.is_none() && form.base_text.is_some() {
            spans.push(Span::styled(format!("  (was {})", fl.original), t.dim()));
        }
        lines.push(Line::from(spans));
        if let Some(e) = &fl.error {
            lines.push(Line::from(Span::styled(format!("{:19}✗ {}", "", sanitize(e)), t.bad())));
        }
        if focused {
            let cands = form.candidates(cloud);
            if !cands.is_empty() {
                let shown: Vec<String> = cands.iter().take(6).cloned().collect();
                let more = cands.len().saturating_sub(6);
                let tail = if more > 0 { format!(" (+{more})") } else { String::new() };
                lines.push(Line::from(Span::styled(
                    format!("{:19}tab: {}{tail}", "", sanitize(&shown.join("  "))),
                    t.dim(),
                )));
            }
        }
    }
    lines.push(Line::from(""));
    for n in form.info.iter().chain(&form.notes) {
        lines.push(Line::from(Span::styled(format!("   {n}"), t.warn())));
    }
    lines.push(Line::from(Span::styled(
        "   ↑↓ field   tab complete / next   enter review the change   esc cancel",
        t.dim(),
    )));
    let w = 84.min(area.width);
    // Long errors wrap: count the rows they take.
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let r = centered(area, w, rows as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.accent())
                .title(Span::styled(format!(" {} ", form.title), t.title())),
        ),
        r,
    );
}

fn diff_style(app: &App, l: &str) -> Style {
    let t = &app.theme;
    if l.starts_with("+++") || l.starts_with("---") {
        t.dim().add_modifier(Modifier::BOLD)
    } else if l.starts_with('+') {
        t.ok()
    } else if l.starts_with('-') {
        t.bad()
    } else if l.starts_with("@@") {
        t.accent()
    } else {
        t.base()
    }
}

/// A change waiting for confirmation: its effect, then its diff.
pub fn review(f: &mut Frame, app: &App, area: Rect, r: &Review) {
    let t = &app.theme;
    // The whole body, between the header and the footer.
    let outer = Rect { y: area.y + 1, height: area.height.saturating_sub(2), ..area };
    f.render_widget(Clear, outer);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.warn())
        .title(Span::styled(format!(" {} — review (j/k scroll, tab switches, esc cancels) ", r.title), t.title()));
    let inner = block.inner(outer);
    f.render_widget(block, outer);
    let [body, buttons] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
    let mut lines: Vec<Line> = r
        .problems
        .iter()
        .map(|p| Line::from(Span::styled(format!(" cannot be applied: {}", sanitize(p)), t.bad())))
        .collect();
    lines.push(Line::from(Span::styled(" what it does:", t.dim())));
    for e in &r.effect {
        lines.push(Line::from(Span::styled(format!("   {}", sanitize(e)), t.base().add_modifier(Modifier::BOLD))));
    }
    let note = match &r.preview {
        PreviewState::Waiting => Some((" the engine is computing its plan for this change…".to_string(), t.dim())),
        PreviewState::NoEngine => {
            Some((" no engine runs in this console: the plan is not previewed".to_string(), t.dim()))
        }
        PreviewState::Failed(e) => Some((format!(" no plan preview: {}", sanitize(e)), t.warn())),
        PreviewState::Ready(p) if !p.steps.is_empty() => {
            let shown: Vec<String> = p.steps.iter().take(4).cloned().collect();
            let more = p.steps.len().saturating_sub(4);
            let tail = if more > 0 { format!(" …and {more} more") } else { String::new() };
            Some((format!(" the engine's next steps: {}{tail}", sanitize(&shown.join("; "))), t.dim()))
        }
        PreviewState::Ready(_) => None,
    };
    if let Some((n, st)) = note {
        lines.push(Line::from(Span::styled(n, st)));
    }
    lines.push(Line::from(Span::styled(format!(" file: {}", r.file.display()), t.dim())));
    lines.push(Line::from(""));
    for l in r.diff.lines() {
        lines.push(Line::from(Span::styled(sanitize(l).into_owned(), diff_style(app, l))));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).scroll((r.scroll, 0)), body);
    let btn = |label: &str, on: bool, danger: bool| {
        let st = match (on, danger) {
            (true, true) => t.bad().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            (true, false) => t.selected(),
            _ => t.dim(),
        };
        Span::styled(format!("[ {label} ]"), st)
    };
    let apply = if r.policy_id.is_none() { "Create" } else { "Apply" };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::raw("   "),
            btn("Cancel", !r.confirm_focused, false),
            Span::raw("    "),
            btn(apply, r.confirm_focused, true),
            Span::styled("   enter chooses", t.dim()),
        ])),
        buttons,
    );
}
