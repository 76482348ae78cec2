//! Pure rendering: `draw(frame, &app)` paints the header, the current view, the
//! footer and any overlay from the state alone. Only visible rows are rendered.

use super::app::{App, ConsoleState, Mode, ViewKind};
use super::keymap::{info_of, Action};
use super::widgets::{clip_line, col, fit, sparkline, truncate, wrap_line, Col};
use crate::domain::Server;
use crate::inventory::CloudSnapshot;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Clear, Dataset, GraphType, Paragraph, Wrap};
use ratatui::Frame;

pub fn draw(f: &mut Frame, app: &App) {
    app.clock.start();
    let area = f.area();
    if area.width < 2 || area.height < 2 {
        return;
    }
    let banner_h = super::app::banner_height(app).min(area.height.saturating_sub(3));
    let notice = super::app::notice_lines(app);
    let notice_h = (notice.len() as u16).min(area.height.saturating_sub(3 + banner_h));
    let [head, banner, body, note, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Min(0),
        Constraint::Length(notice_h),
        Constraint::Length(1),
    ])
    .areas(area);
    if app.kiosk.is_some() && app.view().kind == ViewKind::Overview && matches!(app.mode, Mode::Normal) {
        // The war room: its own large screen, no key needed.
        super::kiosk::draw(f, app, area);
        defuse(f);
        return;
    }
    header(f, app, head);
    banners(f, app, banner);
    notice_bar(f, app, note, &notice);
    match app.view().kind {
        ViewKind::Overview => overview(f, app, body),
        ViewKind::Apps => apps(f, app, body),
        ViewKind::Servers => servers(f, app, body),
        ViewKind::ServerDetail => server_detail(f, app, body),
        ViewKind::Storage => storage(f, app, body),
        ViewKind::Alerts => alerts(f, app, body),
        ViewKind::Events => events(f, app, body),
        ViewKind::Clouds => clouds(f, app, body),
        ViewKind::Plan => plan(f, app, body),
        ViewKind::Policies => super::view_policy::policies(f, app, body),
        ViewKind::PolicyDetail => super::view_policy::policy_detail(f, app, body),
    }
    footer(f, app, foot);
    match &app.mode {
        Mode::Help { scroll } => help(f, app, area, *scroll),
        Mode::Raw { title, text, scroll } => raw(f, app, area, title, text, *scroll),
        Mode::Confirm { pending, confirm_focused, typed } => {
            confirm(f, app, area, pending, *confirm_focused, typed.as_ref())
        }
        Mode::Form(form) => super::view_policy::form(f, app, area, form),
        Mode::Review(r) => super::view_policy::review(f, app, area, r),
        _ => {}
    }
    defuse(f);
}

/// Only the header, over the frame drawn last (`last`, of the same size): what a
/// tick redraws when nothing but the header's data age moved (see `app::tick`).
/// Without a frame of that size, everything.
pub fn draw_header_only(f: &mut Frame, app: &App, last: Option<ratatui::buffer::Buffer>) {
    let area = f.area();
    match last.filter(|b| b.area == area) {
        Some(b) if area.width >= 2 && area.height >= 2 => {
            *f.buffer_mut() = b;
            // The header's texts write only their own cells: blank the row first,
            // or a shorter text (a stale mark gone, a cut breadcrumb) leaves the
            // end of the longer one on screen.
            let row = Rect { height: 1, ..area };
            f.render_widget(ratatui::widgets::Clear, row);
            header(f, app, row);
            defuse(f);
        }
        _ => draw(f, app),
    }
}

/// Nothing reaches the terminal that it would interpret: server names, console
/// logs and error messages come from the cloud, where anyone can put escape
/// sequences in them. Tables show them as visible stand-ins; this last pass over
/// the frame guarantees it for every other text.
fn defuse(f: &mut Frame) {
    for cell in f.buffer_mut().content.iter_mut() {
        if !crate::domain::text::is_safe(cell.symbol()) {
            let safe = crate::domain::text::sanitize(cell.symbol()).into_owned();
            cell.set_symbol(&safe);
        }
    }
}

/// Tasks that died: one red line each, above the view, until the console restarts.
fn banners(f: &mut Frame, app: &App, area: Rect) {
    if area.height == 0 {
        return;
    }
    let t = &app.theme;
    let lines: Vec<Line> = app
        .banners
        .iter()
        .map(|b| {
            let what = if b.starts_with("engine") {
                "the engine no longer plans or acts; restart stackpilot"
            } else {
                "its data no longer refreshes; restart stackpilot"
            };
            // What it means first (the details may not fit the width).
            let b = b.replace('\n', " ");
            let text = match b.split_once(": ") {
                Some((head, details)) => format!(" ✖ {head} — {what}: {details}"),
                None => format!(" ✖ {b} — {what}"),
            };
            Line::from(Span::styled(text, t.bad().add_modifier(Modifier::BOLD | Modifier::REVERSED)))
        })
        .collect();
    f.render_widget(Paragraph::new(lines), area);
}

fn age_style(app: &App, c: Option<&CloudSnapshot>) -> (String, Style) {
    let t = &app.theme;
    let Some(c) = c else { return ("no cloud".into(), t.dim()) };
    let p = c.servers_poll();
    let age = p.age(app.now);
    let txt = match age {
        Some(a) => format!("updated {} ago", app.age_text(a)),
        None => "loading…".to_string(),
    };
    app.clock.shows_polls();
    if let Some(at) = p.last_ok.filter(|_| age.is_some() && !p.is_stale(app.now, app.stale_after)) {
        app.clock.changes_at(stale_from(at, p.interval, app.stale_after));
    }
    if c.unreachable() {
        (format!("unreachable · {txt}"), t.bad())
    } else if age.is_some() && p.is_stale(app.now, app.stale_after) {
        (format!("stale · {txt}"), t.warn())
    } else if p.last_error.is_some() {
        (format!("errors · {txt}"), t.warn())
    } else {
        (txt, t.dim())
    }
}

/// The first second at which a poll that succeeded at `at` counts as stale
/// (`PollState::is_stale`).
fn stale_from(at: crate::domain::Timestamp, interval: std::time::Duration, factor: u32) -> i64 {
    let limit = interval.as_secs_f64() * factor.max(1) as f64 + 1.0;
    at.timestamp().saturating_add(limit.floor() as i64 + 1)
}

/// The header's data age and its colour: the one part of the header the clock
/// alone changes (compared at each tick, see `app::tick`).
pub(crate) fn header_age(app: &App) -> (String, Style) {
    // The header is compared whole at each tick: what it notes is not kept.
    let saved = app.clock.save();
    let r = header_age_of(app);
    app.clock.restore(saved);
    r
}

fn header_age_of(app: &App) -> (String, Style) {
    let t = &app.theme;
    let c = app.cloud_snapshot();
    if app.all_clouds() {
        // The clouds not answering, by name; else the oldest data.
        let down: Vec<&str> = app.shown().clouds.iter().filter(|c| c.unreachable()).map(|c| c.name.as_str()).collect();
        if down.is_empty() {
            app.shown()
                .clouds
                .iter()
                .map(|c| age_style(app, Some(c)))
                .max_by_key(|(_, st)| st == &t.bad() || st == &t.warn())
                .unwrap_or_else(|| age_style(app, c))
        } else {
            (format!("unreachable: {}", down.join(", ")), t.bad())
        }
    } else {
        age_style(app, c)
    }
}

fn header(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let c = app.cloud_snapshot();
    let scope = app.scope_label();
    let name = |id: &str| c.and_then(|c| c.server(id)).map(|s| s.display_name().to_string());
    let crumbs: Vec<String> = app.stack().iter().map(|v| v.crumb(name)).collect();
    let (age, age_st) = header_age(app);
    app.clock.set_header((age.clone(), age_st));
    let width = area.width as usize;
    let frozen = if app.frozen.is_some() { "  FROZEN" } else { "" };
    let engine = app.engine.as_ref().map(|e| {
        let st = if e.observer {
            format!("engine {} (observer, lease: {})", e.mode, e.lease_holder.clone().unwrap_or_default())
        } else if e.paused {
            format!("engine {} PAUSED", e.mode)
        } else {
            format!("engine {}", e.mode)
        };
        (format!("  {st}"), if e.paused { t.warn() } else { t.dim() })
    });
    let read_only = if app.read_only { "  READ-ONLY" } else { "" };
    // What gives way on a narrow terminal, in order: the engine's status (when it
    // is not paused), the program's name, the scope; the view's name never does.
    let current = crumbs.last().cloned().unwrap_or_default();
    let fixed = |name: bool, scope_w: usize, engine_on: bool| {
        (if name { 12 } else { 0 })
            + scope_w
            + 1
            + frozen.len()
            + 2
            + age.chars().count()
            + engine.as_ref().filter(|_| engine_on).map_or(0, |(s, _)| s.chars().count())
            + read_only.len()
            + 1
    };
    let scope_full = unicode_width::UnicodeWidthStr::width(scope.as_str()) + 2;
    let need = unicode_width::UnicodeWidthStr::width(current.as_str()).min(24);
    let paused = app.engine.as_ref().is_some_and(|e| e.paused);
    let engine_on = paused || fixed(true, scope_full, true) + need <= width;
    let with_name = fixed(true, scope_full, engine_on) + need <= width;
    let scope_w = width.saturating_sub(fixed(with_name, 0, engine_on) + need).min(scope_full);
    let crumb_w = width.saturating_sub(fixed(with_name, scope_w, engine_on));
    let mut left = vec![];
    if with_name {
        left.push(Span::styled(" stackpilot ", t.title()));
    }
    if scope_w > 2 {
        left.push(Span::styled(format!(" {} ", truncate(&scope, scope_w - 2, app.ascii)), t.accent()));
    }
    left.push(Span::raw(" "));
    left.push(Span::styled(breadcrumb(&crumbs, crumb_w), t.base().add_modifier(Modifier::BOLD)));
    if app.frozen.is_some() {
        left.push(Span::styled(frozen, t.warn()));
    }
    let mut right = vec![Span::raw("  "), Span::styled(age, age_st)];
    if let Some((e, st)) = engine.filter(|_| engine_on) {
        right.push(Span::styled(e, st));
    }
    if app.read_only {
        right.push(Span::styled(read_only, t.warn().add_modifier(Modifier::BOLD)));
    }
    right.push(Span::raw(" "));
    let rw: u16 = right.iter().map(|s| s.width() as u16).sum();
    let [l, r] = Layout::horizontal([Constraint::Min(0), Constraint::Length(rw.min(area.width))]).areas(area);
    f.render_widget(Paragraph::new(Line::from(left)).style(t.header()), l);
    f.render_widget(Paragraph::new(Line::from(right)).style(t.header()), r);
}

/// The breadcrumb in at most `width` columns: whole when it fits, else the
/// middle elided (`Apps › … › Server web-1`), else the current view alone (cut
/// with an ellipsis only when even that does not fit).
pub fn breadcrumb(crumbs: &[String], width: usize) -> String {
    use unicode_width::UnicodeWidthStr;
    let whole = crumbs.join(" › ");
    if whole.width() <= width {
        return whole;
    }
    let Some(last) = crumbs.last() else { return String::new() };
    if let (Some(first), true) = (crumbs.first(), crumbs.len() > 2) {
        let short = format!("{first} › … › {last}");
        if short.width() <= width {
            return short;
        }
    }
    let short = format!("… › {last}");
    if crumbs.len() > 1 && short.width() <= width {
        return short;
    }
    // The breadcrumb marks its own elisions with `…` in every mode.
    truncate(last, width, false)
}

/// The demo line (or another notice the operator hides with a key).
fn notice_bar(f: &mut Frame, app: &App, area: Rect, lines: &[String]) {
    if area.height == 0 {
        return;
    }
    let t = &app.theme;
    let text: Vec<Line> = lines.iter().map(|l| Line::from(Span::styled(format!(" {l}"), t.accent()))).collect();
    f.render_widget(Paragraph::new(text), area);
}

/// `key label` of an action for the footer (`None` when it is not bound).
fn hint(app: &App, a: Action) -> Option<String> {
    let label = match a {
        Action::Command => "views",
        Action::Help => "help",
        Action::Open => "open",
        Action::Back => "back",
        Action::Quit => "quit",
        Action::Filter => "filter",
        other => info_of(other).name,
    };
    app.keymap.hint(a).map(|k| format!("{k} {label}"))
}

fn footer(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let line = match &app.mode {
        Mode::Command { input, .. } => {
            let comp = super::app::completions(input.value());
            let mut spans = vec![
                Span::styled(":", t.accent()),
                Span::raw(input.value().to_string()),
                Span::styled("▏", t.accent()),
            ];
            if !comp.is_empty() && !input.value().is_empty() {
                spans.push(Span::styled(format!("   tab: {}", comp.join(" ")), t.dim()));
            }
            Line::from(spans)
        }
        Mode::Filter { input } => Line::from(vec![
            Span::styled("/", t.accent()),
            Span::raw(input.value().to_string()),
            Span::styled("▏", t.accent()),
        ]),
        Mode::Form(_) => Line::from(Span::styled(
            " ↑↓ field  tab complete / next  enter review  esc cancel (nothing is written before the review)",
            t.dim(),
        )),
        Mode::Review(_) => {
            Line::from(Span::styled(" tab: Cancel / Apply   enter chooses   j/k scroll   esc cancels", t.dim()))
        }
        _ => match &app.message {
            Some((m, s)) => Line::from(Span::styled(format!(" {m}"), t.severity(*s))),
            None => {
                // Where to go and how to leave first: a newcomer's first screen.
                let mut parts: Vec<String> =
                    [Action::Command, Action::Help, Action::Filter, Action::Open, Action::Back, Action::Quit]
                        .iter()
                        .filter_map(|a| hint(app, *a))
                        .collect();
                if matches!(app.view().kind, ViewKind::Policies | ViewKind::PolicyDetail) {
                    parts.extend([Action::QuickEdit, Action::EditPolicy].iter().filter_map(|a| hint(app, *a)));
                }
                if app.view().kind == ViewKind::PolicyDetail {
                    parts.extend(
                        [Action::MarkChange, Action::DiffChange, Action::RestoreChange]
                            .iter()
                            .filter_map(|a| hint(app, *a)),
                    );
                }
                if matches!(app.view().kind, ViewKind::Servers | ViewKind::ServerDetail) {
                    parts.extend(
                        [Action::Reboot, Action::Stop, Action::Start, Action::Delete, Action::ConsoleLog]
                            .iter()
                            .filter_map(|a| hint(app, *a)),
                    );
                }
                let filter = &app.view().filter;
                let mut state = String::new();
                if !filter.is_empty() {
                    state.push_str(&format!("   filter: /{filter}"));
                }
                if let Some((c, desc)) = app.view().sort {
                    state.push_str(&format!("   sort: {c}{}", if desc { "↓" } else { "↑" }));
                }
                // Whole hints only: those that do not fit are in `?`.
                let room = (area.width as usize).saturating_sub(1 + state.chars().count());
                let mut shown = String::new();
                for p in parts {
                    let next = if shown.is_empty() { p } else { format!("{shown} · {p}") };
                    if unicode_width::UnicodeWidthStr::width(next.as_str()) > room {
                        break;
                    }
                    shown = next;
                }
                Line::from(vec![Span::styled(format!(" {shown}"), t.dim()), Span::styled(state, t.accent())])
            }
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

/// A boxed table of the visible rows. `cells(row_id, widths)` renders one row.
pub(super) fn table<F>(f: &mut Frame, app: &App, area: Rect, title: &str, cols: &[Col], mut cells: F)
where
    F: FnMut(&str, &[(usize, u16)]) -> Vec<Span<'static>>,
{
    let t = &app.theme;
    let v = app.view();
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.dim())
        .title(Span::styled(box_title(app, &format!("{title} [{}]", app.rows.len()), area.width), t.title()));
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let widths = fit(cols, inner.width);
    let mut lines: Vec<Line> = Vec::with_capacity(inner.height as usize);
    let sort = v.sort;
    let head: Vec<Span> = widths
        .iter()
        .enumerate()
        .flat_map(|(n, (i, w))| {
            let Some(c) = cols.get(*i) else { return vec![] };
            let mut title = c.title.to_string();
            if let (Some(k), Some((s, desc))) = (c.sort_key, sort) {
                if k == s {
                    title.push(if desc { '↓' } else { '↑' });
                }
            }
            let mut v = vec![Span::styled(
                format!("{:<w$}", truncate(&title, *w as usize, app.ascii), w = *w as usize),
                t.dim().add_modifier(Modifier::BOLD),
            )];
            if n + 1 < widths.len() {
                v.push(Span::raw(" "));
            }
            v
        })
        .collect();
    lines.push(Line::from(head));
    let visible = (inner.height as usize).saturating_sub(1);
    let start = v.offset.min(app.rows.len().saturating_sub(1));
    for (n, id) in app.rows.ids.iter().enumerate().skip(start).take(visible) {
        let mut spans = cells(id, &widths);
        if app.ascii {
            // Cells mark their cuts with `…`: `~` where Unicode is not trusted.
            for s in spans.iter_mut().filter(|s| s.content.contains('…')) {
                s.content = s.content.replace('…', "~").into();
            }
        }
        if n == v.selected {
            for s in spans.iter_mut() {
                s.style = s.style.patch(t.selected());
            }
            let used: usize = spans.iter().map(|s| s.width()).sum();
            if used < inner.width as usize {
                spans.push(Span::styled(" ".repeat(inner.width as usize - used), t.selected()));
            }
        }
        lines.push(Line::from(spans));
    }
    if app.rows.is_empty() {
        let msg = if v.filter.is_empty() { "nothing here yet" } else { "no row matches the filter (esc clears it)" };
        lines.push(Line::from(Span::styled(format!("  {msg}"), t.dim())));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// Pad/cut cells to their column widths, with a separating space.
pub(super) fn cells_of(values: Vec<(String, Style)>, widths: &[(usize, u16)]) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    for (n, (i, w)) in widths.iter().enumerate() {
        let (text, style) = values.get(*i).cloned().unwrap_or_default();
        let w = *w as usize;
        // Control characters shown as visible stand-ins (ratatui would drop them
        // silently: an operator should see that a name carries escapes).
        let cut = truncate(&crate::domain::text::sanitize(&text), w, false);
        let pad = w.saturating_sub(unicode_width::UnicodeWidthStr::width(cut.as_str()));
        out.push(Span::styled(format!("{cut}{}", " ".repeat(pad)), style));
        if n + 1 < widths.len() {
            out.push(Span::raw(" "));
        }
    }
    out
}

/// A box title: ` text `, cut with the ellipsis to fit a box `width` wide.
pub(super) fn box_title(app: &App, text: &str, width: u16) -> String {
    format!(" {} ", truncate(text, (width as usize).saturating_sub(4), app.ascii))
}

/// Lines cut to `width` columns with the ellipsis (a paragraph would cut them
/// without a mark).
pub(super) fn clipped(app: &App, lines: Vec<Line<'static>>, width: u16) -> Vec<Line<'static>> {
    lines.into_iter().map(|l| clip_line(l, width as usize, app.ascii)).collect()
}

/// The rank of the CLOUD column in views that show every cloud at once: kept
/// after the two most important columns of the view (ranked 0 and 10).
pub(super) const CLOUD_RANK: u8 = 15;

/// The CLOUD column of views that show every cloud at once: as wide as the
/// longest name (at most 16), kept whole as long as the status and name are.
pub(super) fn cloud_col(app: &App) -> Col {
    let w = app.shown().clouds.iter().map(|c| c.name.chars().count()).max().unwrap_or(5).clamp(5, 16) as u16;
    col("CLOUD", w, w.min(9), CLOUD_RANK, None)
}

/// A table whose rows belong to clouds: `values` gets each row's cloud and item
/// id, and the widths of `cols`; a CLOUD column comes first when every cloud is
/// shown.
fn cloud_table<F>(f: &mut Frame, app: &App, area: Rect, title: &str, cols: &[Col], mut values: F)
where
    F: FnMut(&CloudSnapshot, &str, &[(usize, u16)]) -> Vec<(String, Style)>,
{
    let merged = app.all_clouds();
    let mut all: Vec<Col> = Vec::with_capacity(cols.len() + 1);
    if merged {
        all.push(cloud_col(app));
    }
    all.extend_from_slice(cols);
    let o = usize::from(merged);
    table(f, app, area, title, &all, |id, widths| {
        let Some((c, item)) = app.row(id) else { return vec![] };
        let inner: Vec<(usize, u16)> = widths.iter().filter(|(i, _)| *i >= o).map(|(i, w)| (i - o, *w)).collect();
        let mut v = values(c, item, &inner);
        if v.is_empty() {
            return vec![];
        }
        if merged {
            v.insert(0, (c.name.clone(), app.theme.dim()));
        }
        cells_of(v, widths)
    });
}

/// What a CPU cell shows: the history, the value now (`None`: the server is
/// stopped or its data is stale; it reads `-` and the sparkline is dimmed), how
/// many samples the history ends before now (a stale series stops short of the
/// right edge), and for an aggregate, how many members have a value now, of how
/// many (shown when not all: `34% (5/7)`).
struct CpuCell {
    values: Vec<f64>,
    now: Option<f64>,
    gap: usize,
    cover: Option<(usize, usize)>,
}

fn cpu_cell(app: &App, cpu: CpuCell, width: u16) -> (String, Style) {
    let pct = match cpu.now {
        Some(v) => format!("{v:>3.0}%"),
        None => "-".into(),
    };
    let pct = match cpu.cover {
        Some((k, n)) if k < n => format!("{pct} ({k}/{n})"),
        _ => pct,
    };
    let w = width as usize;
    // The value right-aligned, the sparkline in front of it when there is room.
    let spark_w = w.saturating_sub(pct.chars().count().max(4) + 1);
    let gap = cpu.gap.min(spark_w);
    let spark = sparkline(&cpu.values, spark_w - gap, Some(100.0), app.ascii);
    let text = format!("{spark}{}{pct:>pw$}", " ".repeat(gap), pw = w - spark_w);
    let st = match cpu.now {
        None => app.theme.dim(),
        Some(v) if v >= 90.0 => app.theme.bad(),
        Some(v) if v >= 70.0 => app.theme.warn(),
        _ => app.theme.accent(),
    };
    (text, st)
}

/// The clock of a cloud's metrics: the time of its newest sample, and whether
/// its metrics are stale as a whole (their poller has not answered for a while:
/// then no server has a value now).
#[derive(Clone, Copy)]
struct MetricClock {
    newest: Option<i64>,
    stale: bool,
}

fn metric_clock(app: &App, c: &CloudSnapshot) -> MetricClock {
    MetricClock { newest: crate::inventory::snapshot::newest_sample(&c.metrics), stale: metrics_stale(app, c) }
}

/// The cloud's metrics poller has not answered for a while (noting when that
/// turns, and that a refresh may turn it back).
fn metrics_stale(app: &App, c: &CloudSnapshot) -> bool {
    let stale = metrics_stale_at(c, app.now, app.stale_after);
    if let Some(p) = c.polls.get(&crate::inventory::Kind::Metrics) {
        if let Some(at) = p.last_ok.filter(|_| !stale) {
            app.clock.changes_at(stale_from(at, p.interval, app.stale_after));
        }
    }
    stale
}

/// The cloud's metrics poller had not answered for a while at `now`.
pub(crate) fn metrics_stale_at(c: &CloudSnapshot, now: crate::domain::Timestamp, factor: u32) -> bool {
    c.polls.get(&crate::inventory::Kind::Metrics).is_some_and(|p| p.last_ok.is_some() && p.is_stale(now, factor))
}

/// One server's CPU cell: `-` and a dimmed history when it is stopped or stale.
fn server_cpu(app: &App, c: &CloudSnapshot, s: &Server, clock: MetricClock, width: u16) -> (String, Style) {
    use crate::inventory::snapshot::{cpu_now, sample_spacing};
    let m = c.metrics.get(&s.id).map(|m| &**m);
    let values = m.map(|m| m.cpu.tail_values(width as usize)).unwrap_or_default();
    let now = if clock.stale { None } else { cpu_now(s, m, clock.newest) };
    let gap = match (m.and_then(|m| m.cpu.last_time()), clock.newest, m) {
        (Some(last), Some(newest), Some(m)) => ((newest - last) / sample_spacing(&m.cpu).max(1)).max(0) as usize,
        _ => 0,
    };
    cpu_cell(app, CpuCell { values, now, gap, cover: None }, width)
}

/// The Servers table, in its display order. Kept on a narrow terminal in rank
/// order: STATUS, NAME, (CLOUD), APP, CPU, FLAVOR, TASK, AGE, ADDRESSES, IMAGE,
/// AZ (README: "Narrow terminals").
const SERVER_COLS: [Col; 10] = [
    col("STATUS", 10, 7, 0, Some('S')),
    col("NAME", 20, 10, 10, Some('N')),
    col("APP", 10, 5, 20, Some('A')),
    col("FLAVOR", 10, 6, 40, Some('F')),
    col("IMAGE", 30, 8, 80, Some('I')),
    col("ADDRESSES", 20, 10, 70, None),
    col("AZ", 6, 4, 90, Some('Z')),
    col("AGE", 5, 4, 60, Some('O')),
    col("TASK", 12, 6, 50, Some('T')),
    col("CPU", 24, 12, 30, Some('C')),
];

fn server_values(app: &App, c: &CloudSnapshot, s: &Server, clock: MetricClock, cpu_width: u16) -> Vec<(String, Style)> {
    let t = &app.theme;
    let image = match &s.image_id {
        Some(i) => c.image_name(i).unwrap_or(i).to_string(),
        None => "(volume)".into(),
    };
    let age = s.created.map(|cr| app.age_text((c.cloud_now(app.now) - cr).num_seconds())).unwrap_or_default();
    vec![
        match &s.decode_error {
            // The record no longer decodes: the row is its last good one.
            Some(_) => ("UNREADABLE".to_string(), t.bad()),
            None => (s.status.to_string(), t.status(&s.status)),
        },
        (s.display_name().to_string(), t.base()),
        (s.app().unwrap_or("-").to_string(), t.accent()),
        (s.flavor.label().to_string(), t.base()),
        (image, t.dim()),
        (s.addresses_label(), t.base()),
        (s.availability_zone.clone().unwrap_or_default(), t.dim()),
        (age, t.dim()),
        (s.task_state.clone().unwrap_or_default(), t.warn()),
        server_cpu(app, c, s, clock, cpu_width),
    ]
}

fn servers(f: &mut Frame, app: &App, area: Rect) {
    let title = match &app.view().app {
        Some(a) => format!("servers of {a}"),
        None => "servers".to_string(),
    };
    let clocks: Vec<(String, MetricClock)> =
        app.shown().clouds.iter().map(|c| (c.name.clone(), metric_clock(app, c))).collect();
    cloud_table(f, app, area, &title, &SERVER_COLS, |c, id, widths| {
        let Some(s) = c.server(id) else { return vec![] };
        let cpu_w = widths.iter().find(|(i, _)| *i == 9).map(|w| w.1).unwrap_or(10);
        let clock = clocks
            .iter()
            .find(|(n, _)| *n == c.name)
            .map(|x| x.1)
            .unwrap_or(MetricClock { newest: None, stale: false });
        server_values(app, c, s, clock, cpu_w)
    });
}

/// The Apps table, in its display order. Kept on a narrow terminal in rank
/// order: APP, DESIRED, (CLOUD), CPU, WHY, SERVERS, ERROR, ACTIVE, ROLLOUT,
/// BUILD, FLAVORS (README: "Narrow terminals").
const APP_COLS: [Col; 10] = [
    col("APP", 12, 6, 0, Some('N')),
    col("SERVERS", 7, 7, 50, Some('S')),
    col("ACTIVE", 6, 6, 70, None),
    col("BUILD", 5, 5, 90, None),
    col("ERROR", 5, 5, 60, Some('E')),
    col("DESIRED", 8, 7, 10, None),
    col("WHY", 19, 8, 40, None),
    col("FLAVORS", 16, 7, 100, None),
    col("CPU", 24, 14, 30, Some('C')),
    col("ROLLOUT", 20, 10, 80, None),
];

/// An app's CPU: the mean of its members with a value now, and how many of its
/// members that is.
fn app_cpu(app: &App, c: &CloudSnapshot, a: &crate::inventory::AppSummary, width: u16) -> (String, Style) {
    let stale = metrics_stale(app, c);
    let (now, live) = if stale { (None, 0) } else { (a.cpu_now, a.cpu_live) };
    let values = a.cpu.tail_values(width as usize);
    cpu_cell(app, CpuCell { values, now, gap: 0, cover: Some((live, a.total())) }, width)
}

/// A rollout as a progress bar: `r2 ▰▰▰▱▱▱ 3/6 -3` (new ready of desired, old left).
fn rollout_cell(app: &App, r: &crate::engine::rollout::RolloutView, width: u16) -> (String, Style) {
    let t = &app.theme;
    let head = if r.rolling_back { format!("↶r{}", r.target) } else { format!("r{}", r.target) };
    let tail =
        format!(" {}/{}{}", r.new_ready, r.desired, if r.old > 0 { format!(" -{}", r.old) } else { String::new() });
    let bar_w = (width as usize).saturating_sub(head.chars().count() + tail.chars().count() + 1).min(12);
    let filled = if r.desired == 0 { bar_w } else { (r.new_ready as usize * bar_w / r.desired as usize).min(bar_w) };
    let (on, off) = if app.ascii { ('#', '-') } else { ('▰', '▱') };
    let bar: String = std::iter::repeat_n(on, filled).chain(std::iter::repeat_n(off, bar_w - filled)).collect();
    let style = if r.rolling_back || r.phase.contains("failed") {
        t.bad()
    } else if r.phase.starts_with("paused") {
        t.warn()
    } else {
        t.accent()
    };
    (format!("{head} {bar}{tail}"), style)
}

/// Reason codes that mean "held back": shown in amber.
fn reason_style(t: &super::theme::Theme, reason: &str) -> Style {
    match reason {
        "DesiredWithinRange" | "" => t.dim(),
        "CapacityBlocked" | "MetricsStale" | "PolicyInvalid" | "PolicyMissing" | "RecoveryPaused" => t.bad(),
        _ => t.warn(),
    }
}

/// The word for a policy state in the Apps and Plan views.
fn policy_word(state: &str) -> &'static str {
    match state {
        "invalid" => "PolicyInvalid",
        "missing" => "PolicyMissing",
        "retired" => "Retiring",
        _ => "",
    }
}

fn apps(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let eng = app.engine.as_ref();
    let cloud = app.cloud_name();
    let selected = app.view().selected_key();
    let sel_scaling = selected.as_deref().and_then(|a| eng.and_then(|e| e.scaling_of(&cloud, a)));
    // The selected app's autoscaler below the table when there is room.
    let (table_area, panel) = match sel_scaling {
        Some(v) if area.height >= 20 => {
            let [a, b] = Layout::vertical([Constraint::Min(6), Constraint::Length(11)]).areas(area);
            (a, Some((b, v)))
        }
        _ => (area, None),
    };
    cloud_table(f, app, table_area, "apps", &APP_COLS, |c, id, widths| {
        let Some(a) = c.apps.iter().find(|a| a.name == id) else { return vec![] };
        let cpu_w = widths.iter().find(|(i, _)| *i == 8).map(|w| w.1).unwrap_or(10);
        let sc = eng.and_then(|e| e.scaling_of(&c.name, id));
        let governed = eng.and_then(|e| e.app_of(&c.name, id));
        let desired = match (sc, governed) {
            (Some(v), _) => format!("{} {}..{}", v.desired, v.min, v.max),
            (None, Some(g)) => g.desired.to_string(),
            _ => "-".into(),
        };
        // A policy that is not ok says so first: it is what the operator must fix.
        let pol = eng.and_then(|e| e.policy_of(&c.name, id)).filter(|p| p.state != "ok");
        let rollout = governed.and_then(|g| g.rollout.as_ref());
        let why = match (pol, governed.and_then(|g| g.hold.as_ref()), rollout) {
            (Some(p), _, _) => policy_word(&p.state).to_string(),
            (None, Some(h), _) => h.split(':').next().unwrap_or_default().to_string(),
            (None, None, Some(r)) if r.rolling_back => "RollingBack".into(),
            (None, None, Some(r)) if r.phase.starts_with("paused") => "RolloutPaused".into(),
            (None, None, Some(_)) => "RollingUpdate".into(),
            (None, None, None) if governed.is_some_and(|g| g.recovery_paused) => "RecoveryPaused".into(),
            (None, None, None) if governed.is_some_and(|g| g.unhealthy > 0) => {
                format!("Recovering {}", governed.map_or(0, |g| g.unhealthy))
            }
            (None, None, None) => sc.map(|v| v.reason.clone()).unwrap_or_default(),
        };
        let rollout_w = widths.iter().find(|(i, _)| *i == 9).map(|w| w.1).unwrap_or(12);
        let rollout = rollout.map(|r| rollout_cell(app, r, rollout_w)).unwrap_or_else(|| ("-".into(), t.dim()));
        vec![
            (a.name.clone(), t.accent()),
            (a.total().to_string(), t.base()),
            (a.active.to_string(), t.ok()),
            (a.building.to_string(), if a.building > 0 { t.warn() } else { t.dim() }),
            (a.error.to_string(), if a.error > 0 { t.bad() } else { t.dim() }),
            (desired, t.base()),
            (why.clone(), reason_style(t, &why)),
            (a.flavors.join(","), t.dim()),
            app_cpu(app, c, a, cpu_w),
            rollout,
        ]
    });
    if let Some((area, v)) = panel {
        scaling_panel(f, app, area, v);
    }
}

/// One autoscaled app: the metric against its target line, why (not) scaling, and
/// the recent recommendations.
fn scaling_panel(f: &mut Frame, app: &App, area: Rect, v: &crate::engine::runner::ScalingView) {
    let t = &app.theme;
    let block = Block::default().borders(Borders::ALL).border_style(t.dim()).title(Span::styled(
        format!(" {} autoscaler: {} members, desired {} ({}..{}) ", v.app, v.current, v.desired, v.min, v.max),
        t.title(),
    ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 3 || inner.width < 20 {
        return;
    }
    let [why, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!("{} ", v.reason), reason_style(t, &v.reason).add_modifier(Modifier::BOLD)),
            Span::styled(v.message.clone(), t.base()),
        ])),
        why,
    );
    let hist_w = if body.width >= 90 { 44 } else { 0 };
    let [chart_area, hist_area] = Layout::horizontal([Constraint::Min(0), Constraint::Length(hist_w)]).areas(body);
    // Metric vs target, over the chart window.
    let now = v.series.last().map(|x| x.0).unwrap_or(app.now.timestamp());
    let from = now - app.window_secs;
    let data: Vec<(f64, f64)> =
        v.series.iter().filter(|(x, _)| *x >= from).map(|(x, y)| ((x - now) as f64 / 60.0, *y)).collect();
    let mins = app.window_secs as f64 / 60.0;
    let target = [(-mins, v.target), (0.0, v.target)];
    let top = data.iter().map(|d| d.1).fold(v.target, f64::max) * 1.2;
    let top = if v.unit == "%" { top.min(100.0).max(v.target * 1.2) } else { top.max(1.0) };
    let label = format!("{} {}", v.metric, v.unit);
    if data.is_empty() || chart_area.height < 3 {
        f.render_widget(Paragraph::new(Span::styled(format!(" {label}: no samples yet"), t.dim())), chart_area);
    } else {
        let marker = if app.ascii { Marker::Dot } else { Marker::Braille };
        let sets = vec![
            Dataset::default()
                .name(format!("target {}", v.target))
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(t.warn())
                .data(&target),
            Dataset::default()
                .name(label.clone())
                .marker(marker)
                .graph_type(GraphType::Line)
                .style(t.accent())
                .data(&data),
        ];
        let last = data.last().map(|d| d.1).unwrap_or(0.0);
        let c = Chart::new(sets)
            .block(
                Block::default().title(Span::styled(format!(" {label} {last:.1} vs target {} ", v.target), t.base())),
            )
            .x_axis(time_axis(t, mins))
            .y_axis(value_axis(t, top));
        f.render_widget(c, chart_area);
    }
    if hist_w > 0 {
        let mut lines = vec![Line::from(Span::styled(" recommendations (newest first)", t.dim()))];
        for d in v.decisions.iter().rev().take(hist_area.height.saturating_sub(1) as usize) {
            lines.push(Line::from(vec![
                Span::styled(format!(" {} ", d.at.format("%H:%M:%S")), t.dim()),
                Span::styled(format!("{:>3} → {:<3} ", d.recommendation, d.desired), t.base()),
                Span::styled(d.reason.as_str().to_string(), reason_style(t, d.reason.as_str())),
            ]));
        }
        f.render_widget(Paragraph::new(lines), hist_area);
    }
}

/// One band of the Overview: a cloud's heading, or a row of its app tiles
/// (indices into the rows).
enum Band<'a> {
    Cloud(&'a CloudSnapshot),
    Tiles(&'a CloudSnapshot, Vec<usize>),
    Empty,
}

fn overview(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(c) = app.cloud_snapshot() else {
        f.render_widget(Paragraph::new("no cloud"), area);
        return;
    };
    let [tiles_area, ticker, health] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let per_row = ((tiles_area.width / 30).max(1)) as usize;
    let tile_h = 7u16;
    let sel = app.view().selected;
    let merged = app.all_clouds();
    // Every cloud's heading and tiles (grouped by cloud), or the one cloud's tiles.
    let groups: Vec<&CloudSnapshot> = if merged { app.shown().clouds.iter().collect() } else { vec![c] };
    let mut bands: Vec<Band> = Vec::new();
    for g in &groups {
        let mine: Vec<usize> = app
            .rows
            .ids
            .iter()
            .enumerate()
            .filter(|(_, id)| app.row(id).is_some_and(|(rc, _)| rc.name == g.name))
            .map(|(k, _)| k)
            .collect();
        if merged {
            bands.push(Band::Cloud(g));
            if mine.is_empty() {
                bands.push(Band::Empty);
            }
        }
        bands.extend(mine.chunks(per_row).map(|ch| Band::Tiles(g, ch.to_vec())));
    }
    let height = |b: &Band| match b {
        Band::Tiles(..) => tile_h,
        _ => 1,
    };
    // The first band shown keeps the selected tile on screen.
    let sel_band = bands.iter().position(|b| matches!(b, Band::Tiles(_, ks) if ks.contains(&sel))).unwrap_or(0);
    let mut first = 0;
    while first < sel_band && bands.iter().take(sel_band + 1).skip(first).map(height).sum::<u16>() > tiles_area.height {
        first += 1;
    }
    if app.rows.is_empty() && !merged {
        f.render_widget(
            Paragraph::new(Span::styled(
                "  no applications yet: servers with `stackpilot:app` metadata appear here",
                t.dim(),
            )),
            tiles_area,
        );
    }
    let mut y = tiles_area.y;
    let bottom = tiles_area.y + tiles_area.height;
    for b in bands.iter().skip(first) {
        let h = height(b).min(bottom.saturating_sub(y));
        if h == 0 {
            break;
        }
        let line = Rect { x: tiles_area.x, y, width: tiles_area.width, height: 1 };
        match b {
            Band::Cloud(g) => {
                f.render_widget(Paragraph::new(clip_line(cloud_heading(app, g), line.width as usize, app.ascii)), line)
            }
            Band::Empty => {
                f.render_widget(Paragraph::new(Span::styled("   no applications on this cloud", t.dim())), line)
            }
            Band::Tiles(g, ks) => {
                let w = tiles_area.width / per_row as u16;
                for (col_i, k) in ks.iter().enumerate() {
                    let rect = Rect { x: tiles_area.x + col_i as u16 * w, y, width: w, height: h };
                    if rect.height < 3 || rect.width < 8 {
                        continue;
                    }
                    let Some(id) = app.rows.ids.get(*k) else { continue };
                    let Some(a) = g.apps.iter().find(|a| a.name == super::app::item_of(id)) else { continue };
                    app_tile(f, app, rect, g, a, *k == sel);
                }
            }
        }
        y += h;
    }
    // Alert ticker: the active alerts, most severe first.
    let alerts: Vec<crate::domain::Alert> = app.alerts().into_iter().filter(|a| a.is_active()).collect();
    // One alert at a time, turning every five seconds, most severe first.
    let mut v: Vec<&crate::domain::Alert> = alerts.iter().collect();
    crate::domain::sort::sort_by_key(&mut v, |a| std::cmp::Reverse(a.severity));
    let idx = (app.now.timestamp() / 5).unsigned_abs() as usize % v.len().max(1);
    if v.len() > 1 {
        app.clock.changes_at((app.now.timestamp().div_euclid(5) + 1) * 5);
    }
    let tick = match v.get(idx) {
        None => Line::from(Span::styled(" no alerts", t.ok())),
        Some(a) => {
            let sev = format!(" ▲ {} ", a.severity.as_str().to_uppercase());
            let tally = format!("   ({})", by_severity(&alerts));
            let msg =
                if merged && !a.cloud.is_empty() { format!("{}: {}", a.cloud, a.message) } else { a.message.clone() };
            // The message gives way first: the tally stays readable.
            let room = (ticker.width as usize).saturating_sub(sev.chars().count() + tally.chars().count());
            Line::from(vec![
                Span::styled(sev, t.severity(a.severity)),
                Span::raw(truncate(&msg, room.max(8), app.ascii)),
                Span::styled(tally, t.dim()),
            ])
        }
    };
    f.render_widget(Paragraph::new(clip_line(tick, ticker.width as usize, app.ascii)), ticker);
    let line = if merged {
        // Each cloud's data age in a word; the headings above say the rest.
        let mut spans = vec![Span::styled(" clouds:", t.dim())];
        for g in &groups {
            let (age, st) = age_style(app, Some(g));
            spans.push(Span::styled(format!(" {} ", g.name), t.accent()));
            spans.push(Span::styled(age, st));
        }
        Line::from(spans)
    } else {
        let (age, st) = age_style(app, Some(c));
        // The data's age first: it is what 80 columns must keep.
        Line::from(vec![
            Span::styled(format!(" {} ", c.name), t.accent()),
            Span::styled(age, st),
            Span::styled(
                format!(
                    " · {} servers · {} volumes · {} backups{}",
                    c.servers.len(),
                    c.volumes.len(),
                    c.backups.len(),
                    quota_text(c)
                ),
                t.dim(),
            ),
        ])
    };
    f.render_widget(Paragraph::new(clip_line(line, health.width as usize, app.ascii)), health);
}

/// ` · instances 12/50 · cores 20/40`: quota use, when the cloud told it.
fn quota_text(c: &CloudSnapshot) -> String {
    let Some(l) = c.limits.as_ref() else { return String::new() };
    let of = |used: i64, max: Option<i64>| format!("{used}/{}", max.map(|m| m.to_string()).unwrap_or("∞".into()));
    format!(" · instances {} · cores {}", of(l.instances_used, l.max_instances), of(l.cores_used, l.max_cores))
}

/// A cloud's heading in the merged Overview: name, scope, health and data age,
/// quota use, alerts.
fn cloud_heading(app: &App, c: &CloudSnapshot) -> Line<'static> {
    let t = &app.theme;
    let (age, st) = age_style(app, Some(c));
    let alerts: Vec<crate::domain::Alert> =
        app.alerts().into_iter().filter(|a| a.is_active() && a.cloud == c.name).collect();
    let mut spans = vec![
        Span::styled(format!(" ▍{} ", c.name), t.title()),
        Span::styled(
            format!("{}/{} · ", c.scope.region.as_deref().unwrap_or("-"), c.scope.project.as_deref().unwrap_or("-")),
            t.dim(),
        ),
        Span::styled(age, st),
        Span::styled(format!(" · {} servers · {} volumes{}", c.servers.len(), c.volumes.len(), quota_text(c)), t.dim()),
    ];
    if alerts.is_empty() {
        spans.push(Span::styled(" · no alerts", t.ok()));
    } else {
        let worst = alerts.iter().map(|a| a.severity).max().unwrap_or(crate::domain::Severity::Info);
        spans.push(Span::styled(format!(" · ▲ {}", by_severity(&alerts)), t.severity(worst)));
    }
    Line::from(spans)
}

/// One app's tile: CPU (sparkline, the mean now and how many members it
/// covers), readiness with its legend (`ready 2/4 · 3 VMs · 1 unhealthy`: ready
/// of desired when a policy governs the app, the VMs carrying its tag, the
/// members failing), the VMs by status, flavors, recent events.
fn app_tile(f: &mut Frame, app: &App, rect: Rect, c: &CloudSnapshot, a: &crate::inventory::AppSummary, selected: bool) {
    let t = &app.theme;
    let eng = app.engine.as_ref().and_then(|e| e.app_of(&c.name, &a.name));
    let border = if a.error > 0 {
        t.bad()
    } else if a.building > 0 {
        t.warn()
    } else {
        t.dim()
    };
    let border = if selected { border.add_modifier(Modifier::BOLD).patch(t.accent()) } else { border };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(box_title(app, &a.name, rect.width), t.title()));
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let (cpu, cpu_st) = app_cpu(app, c, a, inner.width);
    // Ready of desired from the engine when a policy governs the app, else the
    // ACTIVE servers; failing members as the engine counts them, else ERROR.
    let (ready, unhealthy) = match eng {
        Some(e) => (format!("ready {}/{}", e.ready, e.desired), e.unhealthy as usize),
        None => (format!("ready {}", a.active), a.error),
    };
    let vms = if a.total() == 1 { "1 VM".to_string() } else { format!("{} VMs", a.total()) };
    // A narrow tile leaves out what says least: no one failing, then the VMs.
    let failing = Span::styled(format!(" · {unhealthy} unhealthy"), if unhealthy > 0 { t.bad() } else { t.dim() });
    let fits = |n: usize| n <= inner.width as usize;
    let full = ready.chars().count() + vms.chars().count() + 3 + failing.width();
    let legend = if fits(full) {
        vec![Span::styled(ready, t.base()), Span::styled(format!(" · {vms}"), t.dim()), failing]
    } else if unhealthy == 0 {
        vec![Span::styled(ready, t.base()), Span::styled(format!(" · {vms}"), t.dim())]
    } else {
        vec![Span::styled(ready, t.base()), failing]
    };
    let mut lines = vec![
        Line::from(Span::styled(cpu, cpu_st)),
        Line::from(legend),
        Line::from(Span::styled(
            format!("active {} · build {} · error {}", a.active, a.building, a.error),
            if a.error > 0 { t.bad() } else { t.dim() },
        )),
        Line::from(Span::styled(a.flavors.join(", "), t.dim())),
    ];
    for e in app
        .events
        .iter()
        .filter(|e| e.app.as_deref() == Some(a.name.as_str()) && (e.cloud.is_empty() || e.cloud == c.name))
        .take(inner.height.saturating_sub(4) as usize)
    {
        lines.push(Line::from(Span::styled(format!("{} {} {}", e.at.format("%H:%M"), e.action, e.result), t.dim())));
    }
    f.render_widget(Paragraph::new(clipped(app, lines, inner.width)), inner);
}

fn field(t: &super::theme::Theme, k: &str, v: String) -> Line<'static> {
    Line::from(vec![Span::styled(format!("{k:>11} "), t.dim()), Span::styled(v, t.base())])
}

/// One server: its fields (most useful first, each cut with the ellipsis; what
/// does not fit is counted), its metrics (charts, or one sparkline each on a
/// small terminal) and its console log when fetched. A stopped or stale server's
/// metrics read `-` now: what is drawn is history.
fn server_detail(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(c) = app.cloud_snapshot() else { return };
    let id = app.view().server.clone().unwrap_or_default();
    let Some(s) = c.server(&id) else {
        let msg = format!("  server {id} is gone (deleted, or not visible any more)");
        f.render_widget(
            Paragraph::new(clip_line(Line::from(Span::styled(msg, t.warn())), area.width as usize, app.ascii)),
            area,
        );
        return;
    };
    let console = app.console.get(&id);
    // Small terminals: the fields, one line per metric, a few lines of the log.
    let compact = area.height < 30 || area.width < 60;
    let (info, charts, bottom) = if compact {
        let log_h = if console.is_some() && area.height >= 14 { (area.height / 3).min(8) } else { 0 };
        let metrics_h = if area.height >= 10 { 5 } else { 0 };
        let [i, m, b] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(metrics_h), Constraint::Length(log_h)])
                .areas(area);
        (i, m, (log_h > 0).then_some(b))
    } else {
        let (top, bottom) = if console.is_some() && area.height > 14 {
            let [a, b] = Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
            (a, Some(b))
        } else {
            (area, None)
        };
        let split = if top.width >= 100 { Direction::Horizontal } else { Direction::Vertical };
        let [info, charts] = Layout::default()
            .direction(split)
            .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
            .areas(top);
        (info, charts, bottom)
    };
    let image = s
        .image_id
        .as_deref()
        .map(|i| format!("{} ({i})", c.image_name(i).unwrap_or("?")))
        .unwrap_or_else(|| "(boot from volume)".into());
    let mut lines = vec![
        field(t, "name", s.display_name().to_string()),
        Line::from(vec![
            Span::styled(format!("{:>11} ", "status"), t.dim()),
            Span::styled(s.status.to_string(), t.status(&s.status)),
            Span::styled(s.task_state.as_ref().map(|x| format!(" ({x})")).unwrap_or_default(), t.warn()),
        ]),
    ];
    if let Some(fl) = &s.fault {
        lines.push(Line::from(vec![
            Span::styled(format!("{:>11} ", "fault"), t.dim()),
            Span::styled(fl.message.clone(), t.bad()),
        ]));
    }
    lines.extend([
        field(t, "app", s.app().unwrap_or("-").to_string()),
        field(
            t,
            "flavor",
            format!(
                "{} ({} vCPU, {} MiB)",
                s.flavor.label(),
                s.flavor.vcpus.map(|v| v.to_string()).unwrap_or("?".into()),
                s.flavor.ram_mb.map(|v| v.to_string()).unwrap_or("?".into())
            ),
        ),
        field(t, "addresses", s.addresses_label()),
        field(t, "image", image),
        field(
            t,
            "created",
            s.created
                .map(|x| {
                    let ago = app.age_text((c.cloud_now(app.now) - x).num_seconds());
                    format!("{} ({ago} ago)", x.format("%Y-%m-%d %H:%M:%S"))
                })
                .unwrap_or_default(),
        ),
        field(t, "id", s.id.clone()),
        field(t, "az", s.availability_zone.clone().unwrap_or_default()),
        field(t, "key", s.key_name.clone().unwrap_or_default()),
        field(t, "launched", s.launched_at.map(|x| x.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()),
        field(t, "tags", s.tags.join(", ")),
    ]);
    for (k, v) in &s.metadata {
        lines.push(field(t, "meta", format!("{k}={v}")));
    }
    // What does not fit is counted, with the key that shows all of it.
    let room = info.height.saturating_sub(2) as usize;
    if lines.len() > room && room > 0 {
        let more = lines.len() - (room - 1);
        lines.truncate(room - 1);
        let raw = app.keymap.hint(Action::Raw).map(|k| format!(" ({k}: all of it as JSON)")).unwrap_or_default();
        lines.push(Line::from(Span::styled(
            format!("{:>11} {more} more fields{raw}", super::widgets::ellipsis(app.ascii)),
            t.dim(),
        )));
    }
    f.render_widget(
        Paragraph::new(clipped(app, lines, info.width.saturating_sub(2))).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.dim())
                .title(Span::styled(box_title(app, s.display_name(), info.width), t.title())),
        ),
        info,
    );
    let m = c.metrics.get(&id);
    let clock = metric_clock(app, c);
    let live = !clock.stale && crate::inventory::snapshot::cpu_now(s, m.map(|m| &**m), clock.newest).is_some();
    let series = [
        ("CPU %", m.map(|m| &m.cpu), Some(100.0)),
        ("memory MiB", m.map(|m| &m.mem), s.flavor.ram_mb.map(|r| r as f64)),
        ("net in B/s", m.map(|m| &m.net_in), None),
    ];
    if compact {
        metric_lines(f, app, charts, &series, live);
    } else {
        let [a, b, cc] =
            Layout::vertical([Constraint::Ratio(1, 3), Constraint::Ratio(1, 3), Constraint::Ratio(1, 3)]).areas(charts);
        for (r, (title, ser, max)) in [a, b, cc].into_iter().zip(series) {
            chart(f, app, r, (title, ser, max), clock.newest, live);
        }
    }
    if let Some(b) = bottom {
        let text = match console {
            Some(ConsoleState::Loading) => "loading…".to_string(),
            Some(ConsoleState::Text(x)) => {
                let lines: Vec<&str> = x.lines().collect();
                let keep = (b.height as usize).saturating_sub(2);
                lines.iter().skip(lines.len().saturating_sub(keep)).copied().collect::<Vec<_>>().join("\n")
            }
            Some(ConsoleState::Failed(e)) => format!("could not fetch the console log: {e}"),
            None => String::new(),
        };
        let lines: Vec<Line<'static>> = text.lines().map(|l| Line::from(l.to_string())).collect();
        f.render_widget(
            Paragraph::new(clipped(app, lines, b.width.saturating_sub(2))).block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(t.dim())
                    .title(Span::styled(box_title(app, "console log", b.width), t.title())),
            ),
            b,
        );
    }
}

/// A metric to draw: its title, its series, its top value (`None`: from the data).
type Series<'a> = (&'a str, Option<&'a crate::domain::MetricSeries>, Option<f64>);

/// The value now of a metric, or `-` when the server is stopped or stale.
fn now_text(s: Option<&crate::domain::MetricSeries>, live: bool) -> String {
    match s.and_then(|s| s.last()) {
        Some((_, v)) if live => format!("{v:.1}"),
        _ => "-".into(),
    }
}

/// Metrics on a small terminal: one line each, label, sparkline, value now.
fn metric_lines(f: &mut Frame, app: &App, area: Rect, series: &[Series], live: bool) {
    let t = &app.theme;
    if area.height == 0 {
        return;
    }
    let inner_w = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line<'static>> = series
        .iter()
        .map(|(title, s, max)| {
            let now = now_text(*s, live);
            let spark_w = inner_w.saturating_sub(11 + 2 + 10);
            let values = s.map(|s| s.tail_values(spark_w)).unwrap_or_default();
            Line::from(vec![
                Span::styled(format!("{title:>11} "), t.dim()),
                Span::styled(sparkline(&values, spark_w, *max, app.ascii), if live { t.accent() } else { t.dim() }),
                Span::styled(format!(" {now:>10}"), t.base()),
            ])
        })
        .collect();
    let title = if live { "metrics (last hour)" } else { "metrics (history: no value now)" };
    f.render_widget(
        Paragraph::new(clipped(app, lines, area.width.saturating_sub(2))).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.dim())
                .title(Span::styled(box_title(app, title, area.width), t.title())),
        ),
        area,
    );
}

/// A metric's chart up to `now` on the cloud's metric clock (a series that
/// stopped ends before the right edge), titled with its value now.
fn chart(f: &mut Frame, app: &App, area: Rect, series: Series, now: Option<i64>, live: bool) {
    let (title, s, max) = series;
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.dim())
        .title(Span::styled(box_title(app, title, area.width), t.title()));
    let now = now.or_else(|| s.and_then(|s| s.last_time())).unwrap_or(app.now.timestamp());
    let from = now - app.window_secs;
    let data: Vec<(f64, f64)> =
        s.map(|s| s.since(from).map(|(t, v)| ((t - now) as f64 / 60.0, v)).collect()).unwrap_or_default();
    if area.height < 4 || area.width < 12 || data.is_empty() {
        let last = if data.is_empty() { "no data yet".to_string() } else { now_text(s, live) };
        f.render_widget(Paragraph::new(Span::styled(format!(" {last}"), t.dim())).block(block), area);
        return;
    }
    let top = max.unwrap_or_else(|| data.iter().map(|d| d.1).fold(0.0, f64::max) * 1.2).max(1.0);
    let ds = Dataset::default()
        .marker(if app.ascii { Marker::Dot } else { Marker::Braille })
        .graph_type(GraphType::Line)
        .style(if live { t.accent() } else { t.dim() })
        .data(&data);
    let mins = app.window_secs as f64 / 60.0;
    let c = Chart::new(vec![ds])
        .block(block.title_top(Line::from(Span::styled(format!(" {} ", now_text(s, live)), t.base())).right_aligned()))
        .x_axis(time_axis(t, mins))
        .y_axis(value_axis(t, top));
    f.render_widget(c, area);
}

/// The last `mins` minutes up to now.
fn time_axis(t: &super::theme::Theme, mins: f64) -> Axis<'static> {
    Axis::default()
        .bounds([-mins, 0.0])
        .labels(vec![Span::styled(format!("-{}m", mins as i64), t.dim()), Span::styled("now", t.dim())])
        .style(t.dim())
}

/// From 0 to `top`.
fn value_axis(t: &super::theme::Theme, top: f64) -> Axis<'static> {
    Axis::default()
        .bounds([0.0, top])
        .labels(vec![Span::styled("0", t.dim()), Span::styled(format!("{top:.0}"), t.dim())])
        .style(t.dim())
}

/// The Volumes & Backups table, in its display order. Kept on a narrow
/// terminal in rank order: NAME, STATUS, (CLOUD), KIND, LAST BACKUP, SIZE,
/// POLICY, NEXT, AGE, DETAIL (README: "Narrow terminals").
const STORAGE_COLS: [Col; 9] = [
    col("KIND", 7, 7, 20, Some('K')),
    col("NAME", 24, 10, 0, Some('N')),
    col("STATUS", 12, 8, 10, Some('S')),
    col("SIZE", 5, 4, 40, Some('Z')),
    col("POLICY", 14, 6, 50, None),
    col("LAST BACKUP", 22, 11, 30, None),
    col("NEXT", 11, 5, 60, None),
    col("DETAIL", 24, 10, 80, None),
    col("AGE", 5, 4, 70, Some('O')),
];

/// When a run comes: `14:00` within a day, else `12-24 02:00` (UTC).
fn when(app: &App, t: crate::domain::Timestamp) -> String {
    if (t - app.now).num_hours() < 24 {
        t.format("%H:%M").to_string()
    } else {
        // Shown with its day until it comes within a day.
        app.clock.changes_at(t.timestamp().saturating_sub(86_400).saturating_add(1));
        t.format("%m-%d %H:%M").to_string()
    }
}

fn storage(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let status_style = |s: &str| {
        if s.starts_with("error") || s == "failed" {
            t.bad()
        } else if matches!(s, "available" | "in-use" | "done") {
            t.ok()
        } else {
            t.warn()
        }
    };
    let covered = |c: &CloudSnapshot, vid: &str| {
        app.engine
            .as_ref()
            .and_then(|e| e.backups.iter().find(|(cl, v)| cl == &c.name && v.volume_id == vid).map(|(_, v)| v))
            .cloned()
    };
    cloud_table(f, app, area, "volumes & backups", &STORAGE_COLS, |c, id, _| {
        let age = |x: Option<crate::domain::Timestamp>| {
            x.map(|x| app.age_text((app.now - x).num_seconds())).unwrap_or_default()
        };
        // What the cloud stamped (volumes, backups) is aged on the cloud's clock.
        let cloud_now = c.cloud_now(app.now);
        let cloud_age = |x: Option<crate::domain::Timestamp>| {
            x.map(|x| app.age_text((cloud_now - x).num_seconds())).unwrap_or_default()
        };
        if let Some(op) = id.strip_prefix("rst:") {
            let Some(j) = app.engine.as_ref().and_then(|e| e.restores.iter().find(|j| j.op == op)) else {
                return vec![];
            };
            use crate::engine::restore::{JobStatus, StepState, Target};
            let target = match &j.target {
                Target::NewVolume { name, .. } => format!("→ new {name}"),
                Target::Existing { volume_id } => format!(
                    "→ {}",
                    c.volumes
                        .iter()
                        .find(|v| &v.id == volume_id)
                        .map(|v| v.label().to_string())
                        .unwrap_or(volume_id.clone())
                ),
            };
            let (status, progress) = match j.status {
                JobStatus::Running => (
                    "running",
                    format!(
                        "step {}/{}",
                        j.steps.iter().filter(|s| s.state == StepState::Done).count() + 1,
                        j.steps.len()
                    ),
                ),
                JobStatus::Done => {
                    ("done", format!("{} step{}", j.steps.len(), if j.steps.len() == 1 { "" } else { "s" }))
                }
                JobStatus::Failed => ("failed", String::new()),
            };
            let detail = match (j.status, j.steps.iter().find(|s| s.state != StepState::Done)) {
                (JobStatus::Failed, _) => j.error.clone().unwrap_or_default(),
                (_, Some(s)) => format!(
                    "{} ({})",
                    s.kind.describe(),
                    if s.state == StepState::Sent { "waiting for the cloud" } else { "next" }
                ),
                (_, None) => format!("from backup {}", j.backup_id),
            };
            let detail = named(c, detail);
            return vec![
                (if j.verify_of.is_some() { "test" } else { "restore" }.into(), t.accent()),
                (target, t.base()),
                (status.into(), status_style(status)),
                (String::new(), t.dim()),
                (String::new(), t.dim()),
                (progress, t.base()),
                (String::new(), t.dim()),
                (detail, if j.status == JobStatus::Failed { t.bad() } else { t.dim() }),
                (age(Some(j.created_at)), t.dim()),
            ];
        }
        if let Some(vid) = id.strip_prefix("vol:") {
            let Some(v) = c.volumes.iter().find(|x| x.id == vid) else { return vec![] };
            let att = v
                .attachments
                .iter()
                .map(|a| {
                    format!(
                        "{} on {}",
                        c.server(&a.server_id).map(|s| s.display_name().to_string()).unwrap_or(a.server_id.clone()),
                        a.device.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let (policy, last, next) = match covered(c, vid) {
                None => (("—".to_string(), t.dim()), (String::new(), t.dim()), String::new()),
                Some(b) => {
                    let last = match &b.last {
                        None => ("none yet".to_string(), t.warn()),
                        Some(l) => (
                            format!(
                                "{} {}G {} {}",
                                app.age_text((cloud_now - l.at).num_seconds()),
                                l.size_gb,
                                if l.incremental { "incr" } else { "full" },
                                if l.status == "available" { "ok" } else { l.status.as_str() }
                            ),
                            status_style(&l.status),
                        ),
                    };
                    let last = if b.rpo_breached { (format!("RPO! {}", last.0), t.bad()) } else { last };
                    let chains = format!("{} ({} ch)", b.policy, b.chains);
                    ((chains, t.base()), last, b.next.map(|n| when(app, n)).unwrap_or_default())
                }
            };
            vec![
                ("volume".into(), t.dim()),
                (v.label().to_string(), t.base()),
                (v.status.clone(), status_style(&v.status)),
                (format!("{}G", v.size_gb), t.base()),
                policy,
                last,
                (next, t.dim()),
                (att, t.dim()),
                (cloud_age(v.created_at), t.dim()),
            ]
        } else {
            let bid = id.trim_start_matches("bak:");
            let Some(b) = c.backups.iter().find(|x| x.id == bid) else { return vec![] };
            let pos = super::rows::backup_tree(&c.backups, &b.volume_id)
                .into_iter()
                .find(|(x, _)| x.id == b.id)
                .map(|(_, p)| p)
                .unwrap_or(super::rows::TreePos::Root);
            let (tee, ell) = if app.ascii { ("|-", "`-") } else { ("├─", "└─") };
            let name = match pos {
                super::rows::TreePos::Root => format!("  {}", b.label()),
                super::rows::TreePos::Child { last } => format!("  {} {}", if last { ell } else { tee }, b.label()),
            };
            let owner = match b.metadata.get(crate::domain::names::POLICY) {
                Some(_) => covered(c, &b.volume_id).map(|v| v.policy.clone()).unwrap_or_else(|| "policy".into()),
                None => "manual".into(),
            };
            let detail = format!(
                "{}{}",
                if b.is_incremental { "incremental" } else { "full" },
                b.fail_reason.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
            );
            vec![
                ("backup".into(), t.dim()),
                (name, t.base()),
                (b.status.clone(), status_style(&b.status)),
                (format!("{}G", b.size_gb), t.base()),
                (owner, t.dim()),
                (String::new(), t.dim()),
                (String::new(), t.dim()),
                (detail, t.dim()),
                (cloud_age(b.data_timestamp.or(b.created_at)), t.dim()),
            ]
        }
    });
}

/// The Alerts table, in its display order. Kept on a narrow terminal in rank
/// order: SEV, MESSAGE, APP, SINCE, CLOUD, SENT (README: "Narrow terminals").
const ALERT_COLS: [Col; 6] = [
    col("SEV", 13, 4, 0, Some('S')),
    col("SINCE", 13, 5, 30, Some('O')),
    col("CLOUD", 10, 5, 40, None),
    col("APP", 10, 4, 20, Some('A')),
    col("SENT", 18, 6, 50, None),
    col("MESSAGE", 38, 20, 10, None),
];

/// How an alert was delivered: each receiver's last result for this occurrence.
fn sent_to(app: &App, a: &crate::domain::Alert) -> String {
    let v: Vec<String> = app
        .deliveries
        .deliveries
        .iter()
        .filter_map(|(r, m)| m.get(&a.key).filter(|d| d.since == a.since).map(|d| format!("{r}: {}", d.last_result)))
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// `2 critical · 1 warning`: active alerts counted by severity, most severe first.
pub fn by_severity(alerts: &[crate::domain::Alert]) -> String {
    use crate::domain::Severity;
    let parts: Vec<String> = [Severity::Critical, Severity::Warning, Severity::Info]
        .iter()
        .filter_map(|s| {
            let n = alerts.iter().filter(|a| a.is_active() && a.severity == *s).count();
            (n > 0).then(|| format!("{n} {}", s.as_str()))
        })
        .collect();
    parts.join(" · ")
}

fn alerts(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let alerts = app.alerts();
    table(f, app, area, "alerts", &ALERT_COLS, |id, widths| {
        let Some(a) = alerts.iter().find(|a| a.key == id) else { return vec![] };
        let (sev, sev_st, since) = match a.resolved_at {
            Some(r) => {
                ("RESOLVED".to_string(), t.dim(), format!("ended {} ago", app.age_text((app.now - r).num_seconds())))
            }
            None => {
                let acked = app.alert_ops.acked.get(&a.key).is_some_and(|at| *at >= a.since);
                let muted = app.alert_ops.silenced.get(&a.key).is_some_and(|until| *until > app.now);
                if let Some(until) = app.alert_ops.silenced.get(&a.key).filter(|_| muted) {
                    app.clock.changes_at(until.timestamp().saturating_add(1));
                }
                let mark = if muted {
                    " muted"
                } else if acked {
                    " ack"
                } else {
                    ""
                };
                (
                    format!("{}{mark}", a.severity.as_str().to_uppercase()),
                    if mark.is_empty() { t.severity(a.severity) } else { t.dim() },
                    app.age_text((app.now - a.since).num_seconds()),
                )
            }
        };
        cells_of(
            vec![
                (sev, sev_st),
                (since, t.dim()),
                (a.cloud.clone(), t.dim()),
                (a.app.clone().unwrap_or("-".into()), t.accent()),
                (sent_to(app, a), t.dim()),
                (a.message.clone(), t.base()),
            ],
            widths,
        )
    });
}

/// The Events table, in its display order. Kept on a narrow terminal in rank
/// order: TIME, ACTION, (CLOUD), RESULT, TARGET, WHY, APP, ACTOR, REQUEST
/// (README: "Narrow terminals").
const EVENT_COLS: [Col; 8] = [
    col("TIME", 8, 8, 0, Some('O')),
    col("ACTOR", 14, 6, 60, None),
    col("ACTION", 12, 6, 10, Some('A')),
    col("APP", 8, 4, 50, None),
    col("TARGET", 14, 6, 30, None),
    col("RESULT", 8, 6, 20, Some('R')),
    col("WHY", 44, 12, 40, None),
    col("REQUEST", 40, 10, 70, None),
];

fn events(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    // Every cloud's events: which cloud, after the time.
    let merged = app.all_clouds();
    let mut cols = EVENT_COLS.to_vec();
    if merged {
        cols.insert(1, cloud_col(app));
    }
    table(f, app, area, "events", &cols, |id, widths| {
        let Some(e) = id.strip_prefix("ev:").and_then(|i| i.parse::<usize>().ok()).and_then(|i| app.events.get(i))
        else {
            return vec![];
        };
        let rs = if e.result == "ok" {
            t.ok()
        } else if e.result == "planned" || e.result == "skipped" {
            t.dim()
        } else {
            t.bad()
        };
        let why = match &e.detail {
            Some(d) if !d.is_empty() => format!("{} — {d}", e.reason),
            _ => e.reason.clone(),
        };
        let mut v = vec![
            (e.at.format("%H:%M:%S").to_string(), t.dim()),
            (e.actor.clone(), t.dim()),
            (e.action.clone(), t.base()),
            (e.app.clone().unwrap_or_default(), t.accent()),
            (e.target.clone().unwrap_or_default(), t.base()),
            (e.result.clone(), rs),
            (why, t.base()),
            (e.request_id.clone().unwrap_or_default(), t.dim()),
        ];
        if merged {
            v.insert(1, (e.cloud.clone(), t.dim()));
        }
        cells_of(v, widths)
    });
}

/// The Clouds table, in its display order. Kept on a narrow terminal in rank
/// order: CLOUD, STATUS, SERVERS, LAST ERROR, REGION, PROJECT, REQUESTS (README:
/// "Narrow terminals").
const CLOUD_COLS: [Col; 7] = [
    col("CLOUD", 12, 5, 0, Some('N')),
    col("REGION", 10, 6, 40, None),
    col("PROJECT", 10, 7, 50, None),
    col("STATUS", 24, 12, 10, None),
    col("SERVERS", 7, 7, 20, None),
    col("REQUESTS", 9, 8, 60, None),
    col("LAST ERROR", 30, 10, 30, None),
];

fn clouds(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let snap = app.shown().clone();
    table(f, app, area, "clouds", &CLOUD_COLS, |id, widths| {
        let Some(c) = snap.clouds.iter().find(|c| c.name == id) else { return vec![] };
        let (age, st) = age_style(app, Some(c));
        let p = c.servers_poll();
        let err = c.polls.values().find_map(|p| p.last_error.clone()).unwrap_or_default();
        cells_of(
            vec![
                (c.name.clone(), t.accent()),
                (c.scope.region.clone().unwrap_or_default(), t.base()),
                (c.scope.project.clone().unwrap_or_default(), t.base()),
                (age, st),
                (c.servers.len().to_string(), t.base()),
                (format!("{} last", p.last_requests), t.dim()),
                (err, t.bad()),
            ],
            widths,
        )
    });
}

/// Lines of text folded into `width` columns: wrapped at words, each
/// continuation indented under the text of its line.
fn fold(app: &App, lines: Vec<Line<'static>>, width: u16) -> Vec<Line<'static>> {
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        let lead = l.spans.first().map_or(0, |s| s.content.chars().take_while(|c| *c == ' ').count());
        out.extend(wrap_line(l, width as usize, lead + 2, app.ascii));
    }
    out
}

fn plan(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.dim())
        .title(Span::styled(box_title(app, "plan: what the engine will do next, and why", area.width), t.title()));
    let mut lines = Vec::new();
    match &app.engine {
        None => lines.push(Line::from(Span::styled(
            "  the engine is off: set `[engine] mode = \"dry-run\"` or \"auto\" in config.toml",
            t.dim(),
        ))),
        Some(e) => {
            lines.push(Line::from(vec![
                Span::styled(format!("  mode {}", e.mode), t.accent()),
                Span::styled(if e.paused { "  PAUSED" } else { "" }, t.warn()),
                Span::styled(
                    e.last_tick
                        .map(|x| format!("  last tick {} ago", app.age_text((app.now - x).num_seconds())))
                        .unwrap_or_default(),
                    t.dim(),
                ),
                Span::styled(e.lease_holder.as_ref().map(|h| format!("  lease {h}")).unwrap_or_default(), t.dim()),
            ]));
            if let Some(why) = &e.observing_why {
                lines.push(Line::from(Span::styled(format!("  observing: {why}"), t.warn())));
            }
            for (cloud, why) in &e.holds {
                lines.push(Line::from(Span::styled(format!("  holding {cloud}: {why}"), t.bad())));
            }
            for err in &e.policy_errors {
                lines.push(Line::from(Span::styled(format!("  {err}"), t.bad())));
            }
            // Several clouds: every cloud's plans with the cloud named, or the shown one's.
            let several = app.shown().clouds.len() > 1;
            let shown_cloud = app.cloud_name();
            let plans = e.plan.iter().filter(|p| app.all_clouds() || !several || p.cloud == shown_cloud);
            let mut any = false;
            for pl in plans {
                any = true;
                let (appname, cloud, steps) = (&pl.app, pl.cloud.as_str(), &pl.lines);
                let st = e.apps.iter().find(|a| &a.app == appname && a.cloud == cloud);
                let pol = e.policy_of(cloud, appname).filter(|p| p.state != "ok");
                let on = if several { format!(" on {cloud}") } else { String::new() };
                let placed = e
                    .placements
                    .iter()
                    .find(|(a, _)| a == appname)
                    .map(|(_, line)| format!(" · placed {line}"))
                    .unwrap_or_default();
                let head = match st {
                    Some(a) => format!(
                        "  {appname}{on}  {}/{} members, {} ready{}{placed}",
                        a.members,
                        a.desired,
                        a.ready,
                        if a.converged { " · converged" } else { "" }
                    ),
                    None => format!("  {appname}{on}"),
                };
                lines.push(Line::from(Span::styled(head, t.title())));
                if let Some(p) = pol {
                    let kept = if p.state == "invalid" { " (the last good revision stays in force)" } else { "" };
                    lines.push(Line::from(Span::styled(
                        format!("    {}{kept}: {}", policy_word(&p.state), p.problems.join("; ")),
                        t.bad(),
                    )));
                }
                if let Some(h) = st.and_then(|a| a.hold.clone()) {
                    lines.push(Line::from(Span::styled(format!("    on hold: {h}"), t.warn())));
                }
                if let Some(v) = e.scaling_of(cloud, appname) {
                    lines.push(Line::from(vec![
                        Span::styled(format!("    autoscaler {} ", v.reason), reason_style(t, &v.reason)),
                        Span::styled(format!("desired {} ({}..{}): {}", v.desired, v.min, v.max, v.message), t.base()),
                    ]));
                }
                if let Some(b) = st.and_then(|a| a.blocked.clone()) {
                    lines.push(Line::from(Span::styled(format!("    {b}"), t.bad())));
                }
                for s in steps {
                    lines.push(Line::from(Span::raw(format!("    {s}"))));
                }
                if steps.is_empty() {
                    lines.push(Line::from(Span::styled("    nothing to do", t.dim())));
                }
            }
            if !any {
                lines.push(Line::from(Span::styled("  no application policies for this cloud", t.dim())));
            }
            if e.approval_pending {
                // Only a key that is bound here is named (none under --read-only).
                let text = match app.keymap.hint(Action::ApprovePlan) {
                    Some(k) => format!("  dry-run: press {k} to carry this plan out once"),
                    None if app.read_only => {
                        "  dry-run: the plan waits for approval from a console that is not read-only".into()
                    }
                    None => "  dry-run: the plan waits for approval (approve-plan has no key in config.toml)".into(),
                };
                lines.push(Line::from(Span::styled(text, t.warn())));
            }
        }
    }
    // Folded to the width; the approval line stays in view when the plan is longer.
    let inner = block.inner(area);
    let pinned = usize::from(app.engine.as_ref().is_some_and(|e| e.approval_pending)).min(lines.len());
    let tail = lines.split_off(lines.len() - pinned);
    let mut body = fold(app, lines, inner.width);
    let tail = fold(app, tail, inner.width);
    let room = (inner.height as usize).saturating_sub(tail.len());
    if body.len() > room && room > 0 {
        let more = body.len() - (room - 1);
        body.truncate(room - 1);
        body.push(Line::from(Span::styled(
            format!("  {} {more} more lines (a taller terminal shows them)", super::widgets::ellipsis(app.ascii)),
            t.dim(),
        )));
    }
    body.extend(tail);
    f.render_widget(Paragraph::new(clipped(app, body, inner.width)).block(block), area);
}

/// Names (servers, volumes, backups of the cloud shown) in place of the ids a
/// text carries.
fn named(c: &CloudSnapshot, text: String) -> String {
    let mut pairs: Vec<(&str, &str)> = c.servers.iter().map(|s| (s.id.as_str(), s.display_name())).collect();
    pairs.extend(c.volumes.iter().map(|v| (v.id.as_str(), v.label())));
    pairs.extend(c.backups.iter().map(|b| (b.id.as_str(), b.label())));
    let mut t = text;
    for (id, name) in pairs {
        if !id.is_empty() && t.contains(id) {
            t = t.replace(id, name);
        }
    }
    t
}

pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn help(f: &mut Frame, app: &App, area: Rect, scroll: u16) {
    let t = &app.theme;
    let kind = app.view().kind;
    let all = super::app::help_lines(app);
    let r = centered(area, 84, (all.len() as u16 + 2).min(area.height));
    let page = r.height.saturating_sub(2) as usize;
    let text_w = (r.width as usize).saturating_sub(2);
    let first = (scroll as usize).min(all.len().saturating_sub(page));
    let key_w = 16;
    let lines: Vec<Line> = all
        .iter()
        .skip(first)
        .take(page)
        .map(|l| {
            if l.heading {
                return Line::from(Span::styled(truncate(&format!(" {}", l.text), text_w, app.ascii), t.title()));
            }
            // A long command pushes its text right; what does not fit is cut visibly.
            let key = format!("{:>key_w$}  ", l.key);
            let rest = text_w.saturating_sub(unicode_width::UnicodeWidthStr::width(key.as_str()));
            Line::from(vec![
                Span::styled(truncate(&key, text_w, app.ascii), t.accent()),
                Span::styled(truncate(&l.text, rest, app.ascii), if l.dangerous { t.warn() } else { t.base() }),
            ])
        })
        .collect();
    let position = if all.len() > page {
        format!(" {}-{} of {} · j/k pgdn scroll", first + 1, (first + page).min(all.len()), all.len())
    } else {
        String::new()
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).border_style(t.accent()).title(
            Span::styled(
                truncate(&format!(" keys of {}{position} · esc closes ", kind.title()), text_w, app.ascii),
                t.title(),
            ),
        )),
        r,
    );
}

fn raw(f: &mut Frame, app: &App, area: Rect, title: &str, text: &str, scroll: u16) {
    let t = &app.theme;
    let r = centered(area, area.width.saturating_sub(4), area.height.saturating_sub(2));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text.to_string()).wrap(Wrap { trim: false }).scroll((scroll, 0)).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.accent())
                .title(Span::styled(format!(" {title} (j/k scroll, any key closes) "), t.title())),
        ),
        r,
    );
}

fn confirm(
    f: &mut Frame,
    app: &App,
    area: Rect,
    p: &super::app::Pending,
    focused: bool,
    typed: Option<&tui_input::Input>,
) {
    let t = &app.theme;
    let q = super::app::confirm_question(app, p);
    let verb = q.verb;
    let named = |text: String| match app.cloud_snapshot() {
        Some(c) => named(c, text),
        None => text,
    };
    let steps: Vec<String> = match (&app.restore_plan, p.action) {
        (Some(j), Action::RestoreBackup) => {
            use crate::engine::restore::Target;
            let warn = match &j.target {
                Target::Existing { volume_id } => {
                    vec![named(format!(" The data now on {volume_id} is replaced by the backup's."))]
                }
                Target::NewVolume { volume_type: None, availability_zone: None, .. } => vec![],
                Target::NewVolume { volume_type, availability_zone, .. } => vec![format!(
                    " A new volume of type {}, in zone {}.",
                    volume_type.as_deref().unwrap_or("(default)"),
                    availability_zone.as_deref().unwrap_or("(default)")
                )],
            };
            warn.into_iter()
                .chain(std::iter::once(" The engine carries out, each step checked on the cloud:".to_string()))
                .chain(j.steps.iter().enumerate().map(|(i, s)| named(format!("   {}. {}", i + 1, s.kind.describe()))))
                .collect()
        }
        _ => vec![],
    };
    let w = if steps.is_empty() { 72 } else { 100 };
    let question_lines =
        super::app::wrap_words(&named(q.text()), (w.min(area.width) as usize).saturating_sub(3).max(10), app.ascii)
            .len() as u16;
    let h = if typed.is_some() { 7 } else { 5 } + question_lines + steps.len() as u16;
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    let inner_w = (r.width as usize).saturating_sub(3).max(10);
    let mut lines: Vec<Line> = super::app::wrap_words(&named(q.text()), inner_w, app.ascii)
        .into_iter()
        .map(|l| Line::from(Span::styled(format!(" {l}"), t.base().add_modifier(Modifier::BOLD))))
        .collect();
    lines.extend(steps.into_iter().map(|x| Line::from(Span::raw(x))));
    if let Some(i) = typed {
        let ask = if p.action == Action::RetireApp {
            format!(" type the application's name ({}) to confirm", p.server_name)
        } else {
            format!(" {} is protected: type the server's name ({}) to confirm", p.cloud, p.server_name)
        };
        lines.push(Line::from(Span::styled(ask, t.warn())));
        lines.push(Line::from(vec![Span::raw(" > "), Span::raw(i.value().to_string()), Span::styled("▏", t.accent())]));
    }
    lines.push(Line::from(""));
    let btn = |label: &str, on: bool, danger: bool| {
        let st = if on {
            if danger {
                t.bad().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else {
                t.selected()
            }
        } else {
            t.dim()
        };
        Span::styled(format!("[ {label} ]"), st)
    };
    lines.push(Line::from(vec![
        Span::raw("      "),
        btn("Cancel", !focused, false),
        Span::raw("    "),
        btn(verb, focused, true),
    ]));
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(t.warn())
                .title(Span::styled(" confirm (tab switches, enter chooses, esc cancels) ", t.title())),
        ),
        r,
    );
}
