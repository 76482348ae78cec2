//! The war-room screen (`--kiosk`): one cloud at a time in large tiles with room
//! between them, the page's application outlined, the cloud's active alerts
//! below. The runtime turns the page every few seconds (`Msg::KioskNext`); no
//! key is needed, and nothing here can change the cloud (a kiosk is read-only).

use super::app::{App, KioskPage};
use super::widgets::truncate;
use crate::inventory::{AppSummary, CloudSnapshot};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Sparkline};
use ratatui::Frame;

/// Columns between tiles, and rows between bands of tiles.
const GAP_X: u16 = 2;
const GAP_Y: u16 = 1;
/// The narrowest a kiosk tile gets when there are tiles beside it.
const TILE_MIN_W: u16 = 42;

/// Bars for `--ascii` terminals.
const ASCII_BARS: symbols::bar::Set = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "#",
    five_eighths: "=",
    half: "=",
    three_eighths: "-",
    one_quarter: "-",
    one_eighth: ".",
    empty: " ",
};

/// Paint the whole screen for the kiosk's current page.
pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let page = app.kiosk_page();
    let cloud = page.as_ref().and_then(|p| app.shown().clouds.get(p.cloud));
    let alerts: Vec<crate::domain::Alert> = app
        .alerts()
        .into_iter()
        .filter(|a| a.is_active() && cloud.is_none_or(|c| a.cloud.is_empty() || a.cloud == c.name))
        .collect();
    let alert_h = (alerts.len().clamp(1, 3) as u16).min(area.height.saturating_sub(4) / 3);
    let [title, _, tiles, _, ticker] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(alert_h),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(title_line(app, cloud, page.as_ref(), area.width)).style(t.header()), title);
    match cloud {
        Some(c) => self::tiles(f, app, tiles, c, page.as_ref().and_then(|p| p.app.as_deref())),
        None => f.render_widget(Paragraph::new(Span::styled("  no cloud answers yet", t.dim())), tiles),
    }
    let mut sorted: Vec<&crate::domain::Alert> = alerts.iter().collect();
    crate::domain::sort::sort_by_key(&mut sorted, |a| std::cmp::Reverse(a.severity));
    let lines: Vec<Line> = if sorted.is_empty() {
        vec![Line::from(Span::styled("  no alerts", t.ok().add_modifier(Modifier::BOLD)))]
    } else {
        sorted
            .iter()
            .take(alert_h as usize)
            .map(|a| {
                let head = format!("  ▲ {} ", a.severity.as_str().to_uppercase());
                let room = (ticker.width as usize).saturating_sub(head.chars().count());
                Line::from(vec![
                    Span::styled(head, t.severity(a.severity).add_modifier(Modifier::BOLD)),
                    Span::raw(truncate(&a.message, room, app.ascii)),
                ])
            })
            .collect()
    };
    f.render_widget(Paragraph::new(lines), ticker);
}

/// ` WAR ROOM  demo RegionOne/demo  page 2/6 · next in 12s   updated 3s ago  READ-ONLY  q quits`
fn title_line(app: &App, c: Option<&CloudSnapshot>, page: Option<&KioskPage>, width: u16) -> Line<'static> {
    let t = &app.theme;
    let mut spans = vec![Span::styled(" WAR ROOM ", t.title().add_modifier(Modifier::BOLD))];
    if let Some(c) = c {
        spans.push(Span::styled(format!("  {} ", c.name), t.accent().add_modifier(Modifier::BOLD)));
        spans.push(Span::styled(
            format!("{}/{}", c.scope.region.as_deref().unwrap_or("-"), c.scope.project.as_deref().unwrap_or("-")),
            t.dim(),
        ));
    }
    if let (Some(p), Some(k)) = (page, app.kiosk.as_ref()) {
        let left = (k.interval_secs as i64 - (app.now - k.turned_at).num_seconds()).max(0);
        spans.push(Span::styled(format!("  page {}/{} · next in {left}s", p.number, p.pages), t.dim()));
    }
    spans.push(Span::styled("  READ-ONLY", t.warn().add_modifier(Modifier::BOLD)));
    if let Some(c) = c {
        let age = c.servers_poll().age(app.now).map(|a| format!("  updated {} ago", crate::domain::time::human_age(a)));
        let st = if c.unreachable() { t.bad() } else { t.dim() };
        let text =
            if c.unreachable() { "  UNREACHABLE".to_string() } else { age.unwrap_or_else(|| "  loading…".into()) };
        spans.push(Span::styled(text, st));
    }
    if let Some(e) = &app.engine {
        spans.push(Span::styled(format!("  engine {}{}", e.mode, if e.paused { " PAUSED" } else { "" }), t.dim()));
    }
    if let Some(k) = app.keymap.hint(super::keymap::Action::Quit) {
        spans.push(Span::styled(format!("  {k} quits"), t.dim()));
    }
    // Whole spans only, from the left: the cloud's name is never the one to go.
    let mut used = 0usize;
    spans
        .into_iter()
        .take_while(|s| {
            used += s.width();
            used <= width as usize
        })
        .collect::<Vec<_>>()
        .into()
}

/// The cloud's applications in large tiles; the page's one outlined, and its
/// band kept on screen.
fn tiles(f: &mut Frame, app: &App, area: Rect, c: &CloudSnapshot, focus: Option<&str>) {
    let t = &app.theme;
    let mut apps: Vec<&AppSummary> = c.apps.iter().collect();
    crate::domain::sort::sort_by(&mut apps, |a, b| a.name.cmp(&b.name));
    if apps.is_empty() {
        f.render_widget(
            Paragraph::new(Span::styled("  no applications on this cloud", t.dim().add_modifier(Modifier::BOLD))),
            area,
        );
        return;
    }
    // As many tiles across as fit at their least width (a wide wall screen
    // takes more), never more than there are applications.
    let most = u16::try_from(apps.len()).unwrap_or(u16::MAX).max(1);
    let cols = (area.width.saturating_sub(GAP_X) / (TILE_MIN_W + GAP_X)).clamp(1, most);
    let tile_w = area.width.saturating_sub(GAP_X * (cols + 1)) / cols;
    let bands = u16::try_from(apps.len().div_ceil(cols as usize)).unwrap_or(u16::MAX);
    let fit = ((area.height + GAP_Y) / (9 + GAP_Y)).max(1);
    let shown = bands.min(fit);
    let tile_h = ((area.height + GAP_Y) / shown.max(1)).saturating_sub(GAP_Y).min(14);
    let focus_band = focus.and_then(|n| apps.iter().position(|a| a.name == n)).unwrap_or(0) as u16 / cols;
    let first = focus_band.saturating_sub(shown.saturating_sub(1));
    for (i, a) in apps.iter().enumerate() {
        let band = i as u16 / cols;
        if band < first || band >= first + shown {
            continue;
        }
        let rect = Rect {
            x: area.x + GAP_X + (i as u16 % cols) * (tile_w + GAP_X),
            y: area.y + (band - first) * (tile_h + GAP_Y),
            width: tile_w,
            height: tile_h,
        };
        if rect.width >= 12 && rect.height >= 4 {
            tile(f, app, rect, c, a, focus == Some(a.name.as_str()));
        }
    }
}

/// One application, large: its counts with their legend, a CPU chart several
/// rows high, and what the engine is doing with it.
fn tile(f: &mut Frame, app: &App, rect: Rect, c: &CloudSnapshot, a: &AppSummary, focused: bool) {
    let t = &app.theme;
    let eng = app.engine.as_ref().and_then(|e| e.app_of(&c.name, &a.name));
    let (desired, ready, total) = match eng {
        Some(e) => (e.desired as usize, e.ready as usize, e.members as usize),
        None => (a.total(), a.active, a.total()),
    };
    let state = if a.error > 0 {
        t.bad()
    } else if a.building > 0 || ready < desired {
        t.warn()
    } else {
        t.ok()
    };
    let border = if focused { state.add_modifier(Modifier::BOLD) } else { t.dim() };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_type(if focused { BorderType::Thick } else { BorderType::Rounded })
        .border_style(border)
        .title(Span::styled(format!(" {} ", a.name.to_uppercase()), t.title().add_modifier(Modifier::BOLD)))
        .title_top(
            Line::from(Span::styled(format!(" ready {ready} / desired {desired} / total {total} "), state))
                .right_aligned(),
        );
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    if inner.height == 0 || inner.width < 4 {
        return;
    }
    let mut facts = vec![Line::from(vec![
        Span::styled(format!(" active {}", a.active), t.ok()),
        Span::styled(format!("   building {}", a.building), if a.building > 0 { t.warn() } else { t.dim() }),
        Span::styled(format!("   error {}", a.error), if a.error > 0 { t.bad() } else { t.dim() }),
        Span::styled(format!("   stopped {}", a.shutoff), t.dim()),
    ])];
    let doing = app.engine.as_ref().and_then(|e| {
        let hold = eng.and_then(|g| g.hold.clone()).map(|h| format!("on hold: {h}"));
        let rollout = eng
            .and_then(|g| g.rollout.as_ref())
            .map(|r| format!("rolling out revision {}: {}/{} new ready", r.target, r.new_ready, r.desired));
        let scaling = e.scaling_of(&c.name, &a.name).map(|v| format!("autoscaler: {}", v.message));
        hold.or(rollout).or(scaling)
    });
    if let Some(d) = doing {
        facts.push(Line::from(Span::styled(
            format!(" {}", truncate(&d, (inner.width as usize).saturating_sub(1), app.ascii)),
            t.base(),
        )));
    }
    let facts_h = (facts.len() as u16).min(inner.height);
    let [head, chart, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(facts_h.min(inner.height.saturating_sub(1))),
    ])
    .areas(inner);
    let cpu = a.cpu.last().map(|x| format!("{:.0}%", x.1)).unwrap_or_else(|| "-".into());
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" CPU ", t.dim()),
            Span::styled(cpu, t.accent().add_modifier(Modifier::BOLD)),
        ])),
        head,
    );
    let w = chart.width.saturating_sub(2) as usize;
    let data: Vec<u64> = a.cpu.tail_values(w).iter().map(|v| v.clamp(0.0, 100.0).round() as u64).collect();
    let spark = Sparkline::default().data(&data).max(100).style(t.accent()).bar_set(if app.ascii {
        ASCII_BARS
    } else {
        symbols::bar::NINE_LEVELS
    });
    let chart = Rect { x: chart.x + 1, width: chart.width.saturating_sub(2), ..chart };
    f.render_widget(spark, chart);
    f.render_widget(Paragraph::new(facts), foot);
}
