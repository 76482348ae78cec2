//! The console without a terminal: `update` (navigation, filter, sort, drill-in and
//! back, confirmation, read-only) and every view rendered into a `TestBackend` from a
//! fixed snapshot and a fixed clock (insta snapshots at 80x24, 120x40 and 200x60),
//! plus a property test that no view panics at any size.

// Tests fail by panicking: unwrap, expect and indexing say so plainly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::let_underscore_must_use,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;
use proptest::prelude::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use stackpilot::config::settings::Theme as ThemeName;
use stackpilot::tui::app::{update, App, ConsoleState, Effect, EngineView, Mode, Msg, ViewKind};
use stackpilot::tui::fixture;
use stackpilot::tui::keymap::{Action, Code, Key, Keymap};
use stackpilot::tui::theme::Theme;
use std::sync::Arc;

fn app_with(read_only: bool) -> App {
    let mut a = App::new(
        Arc::new(fixture::snapshot()),
        Keymap::defaults(read_only),
        Theme::new(ThemeName::Dark, false),
        fixture::now(),
    );
    for e in fixture::events() {
        update(&mut a, Msg::ActionDone(e));
    }
    a.message = None;
    update(&mut a, Msg::Resize(120, 40));
    a
}

fn app() -> App {
    app_with(false)
}

fn keys(a: &mut App, ks: &[Key]) -> Vec<Effect> {
    ks.iter().flat_map(|k| update(a, Msg::Key(*k))).collect()
}

fn typed(a: &mut App, s: &str) -> Vec<Effect> {
    s.chars().flat_map(|c| update(a, Msg::Key(Key::ch(c)))).collect()
}

const ENTER: Key = Key { code: Code::Enter, ctrl: false };
const ESC: Key = Key { code: Code::Esc, ctrl: false };
const TAB: Key = Key { code: Code::Tab, ctrl: false };
const DOWN: Key = Key { code: Code::Down, ctrl: false };

fn selected_name(a: &App) -> String {
    let id = a.view().selected_id.clone().unwrap_or_default();
    a.cloud_snapshot().and_then(|c| c.server(&id)).map(|s| s.display_name().to_string()).unwrap_or(id)
}

#[test]
fn command_line_with_completion_aliases_and_history() {
    let mut a = app();
    assert_eq!(a.view().kind, ViewKind::Overview);
    typed(&mut a, ":srv");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.view().kind, ViewKind::Servers, "alias");
    typed(&mut a, ":al");
    keys(&mut a, &[TAB, ENTER]);
    assert_eq!(a.view().kind, ViewKind::Alerts, "tab completes `al` to alerts");
    typed(&mut a, ":servers @demo /web");
    keys(&mut a, &[ENTER]);
    assert_eq!((a.view().kind, a.view().filter.as_str()), (ViewKind::Servers, "web"));
    assert_eq!(a.rows.len(), 3);
    typed(&mut a, ":nonsense");
    keys(&mut a, &[ENTER]);
    assert!(a.message.as_ref().unwrap().0.contains("unknown command `nonsense`"));
    typed(&mut a, ":servers @nowhere");
    keys(&mut a, &[ENTER]);
    assert!(a.message.as_ref().unwrap().0.contains("no cloud `nowhere`"));
    // `[` walks back through the history.
    keys(&mut a, &[Key::ch('[')]);
    assert_eq!(a.view().kind, ViewKind::Servers);
}

#[test]
fn navigation_filter_sort_and_back_keep_state() {
    let mut a = app();
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.len(), 7);
    assert_eq!(selected_name(&a), "api-1", "sorted by name");
    keys(&mut a, &[Key::ch('j'), Key::ch('j')]);
    assert_eq!(selected_name(&a), "bastion");
    keys(&mut a, &[Key::ch('G')]);
    assert_eq!(selected_name(&a), "worker-1");
    keys(&mut a, &[Key::ch('g')]);
    assert_eq!(selected_name(&a), "api-1");
    // Filter: substring, inverted, regex.
    keys(&mut a, &[Key::ch('/')]);
    typed(&mut a, "web");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.len(), 3);
    keys(&mut a, &[Key::ch('/'), Key { code: Code::Char('u'), ctrl: true }]);
    typed(&mut a, "!web");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.len(), 4);
    keys(&mut a, &[Key::ch('/'), Key { code: Code::Char('u'), ctrl: true }]);
    typed(&mut a, "~^(api|worker)-[0-9]$");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.len(), 3);
    // Sort by CPU, then reverse.
    keys(&mut a, &[Key::ch('/'), Key { code: Code::Char('u'), ctrl: true }, ENTER, Key::ch('C')]);
    assert_eq!(a.view().sort, Some(('C', false)));
    keys(&mut a, &[Key::ch('G')]);
    assert!(selected_name(&a).starts_with("web-"), "highest CPU last: {}", selected_name(&a));
    keys(&mut a, &[Key::ch('C'), Key::ch('g')]);
    assert!(selected_name(&a).starts_with("web-"), "reversed: highest first");
    keys(&mut a, &[Key::ch('j')]);
    let before = (a.view().selected_id.clone(), a.view().sort, a.view().filter.clone());
    // Drill in, then back: selection, filter and sort intact.
    keys(&mut a, &[ENTER]);
    assert_eq!(a.view().kind, ViewKind::ServerDetail);
    assert_eq!(a.view().server, before.0);
    keys(&mut a, &[ESC]);
    assert_eq!(a.view().kind, ViewKind::Servers);
    assert_eq!((a.view().selected_id.clone(), a.view().sort, a.view().filter.clone()), before);
    // Esc clears a filter before it goes back.
    keys(&mut a, &[Key::ch('/')]);
    typed(&mut a, "api");
    keys(&mut a, &[ENTER, ESC]);
    assert_eq!((a.view().kind, a.view().filter.as_str()), (ViewKind::Servers, ""));
    keys(&mut a, &[ESC]);
    assert_eq!(a.view().kind, ViewKind::Overview);
}

#[test]
fn apps_drill_into_their_servers_and_filters_survive_jumps() {
    let mut a = app();
    typed(&mut a, ":apps");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.ids.as_ref(), ["api", "web", "worker"]);
    keys(&mut a, &[Key::ch('j'), ENTER]);
    assert_eq!((a.view().kind, a.view().app.as_deref()), (ViewKind::Servers, Some("web")));
    assert_eq!(a.rows.len(), 3);
    keys(&mut a, &[Key::ch('-')]);
    assert_eq!(a.view().kind, ViewKind::Apps, "`-` goes back");
    assert_eq!(a.view().selected_id.as_deref(), Some("web"));
    // A filter set in Servers comes back when `:servers` is opened again.
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER, Key::ch('/')]);
    typed(&mut a, "api");
    keys(&mut a, &[ENTER]);
    typed(&mut a, ":events");
    keys(&mut a, &[ENTER]);
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.view().filter, "api");
}

#[test]
fn dangerous_actions_confirm_with_cancel_focused() {
    let mut a = app();
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    let target = a.view().selected_id.clone().unwrap();
    // Enter right away cancels: Cancel has the focus.
    assert!(keys(&mut a, &[Key::ch('r')]).is_empty());
    assert!(matches!(a.mode, Mode::Confirm { confirm_focused: false, .. }));
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(matches!(a.mode, Mode::Normal));
    assert!(a.message.as_ref().unwrap().0.contains("cancelled"));
    // Tab to the action, Enter: the effect carries the server.
    let fx = keys(&mut a, &[Key::ch('r'), TAB, ENTER]);
    match fx.as_slice() {
        [Effect::ServerAction(p)] => {
            assert_eq!(p.action, Action::Reboot);
            assert_eq!(p.server_id, target);
        }
        other => panic!("{other:?}"),
    }
    // Esc cancels too.
    assert!(keys(&mut a, &[Key::ch('D'), TAB, ESC]).is_empty());
    // A protected cloud asks for the server name.
    a.protected_clouds = vec!["demo".into()];
    keys(&mut a, &[Key::ch('x'), TAB]);
    typed(&mut a, "wrong");
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(a.message.as_ref().unwrap().0.contains("does not match"));
    keys(&mut a, &[Key::ch('x'), TAB]);
    typed(&mut a, "api-1");
    assert!(matches!(keys(&mut a, &[ENTER]).as_slice(), [Effect::ServerAction(_)]));
}

#[test]
fn read_only_has_no_dangerous_keys_and_says_so() {
    let mut a = app_with(true);
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    for k in ['r', 'x', 'u', 'D'] {
        assert!(keys(&mut a, &[Key::ch(k)]).is_empty());
        assert!(matches!(a.mode, Mode::Normal), "{k} is not bound");
    }
    assert!(keys(&mut a, &[Key { code: Code::Char('r'), ctrl: true }]).is_empty());
    // Console log is not dangerous.
    assert!(matches!(keys(&mut a, &[Key::ch('l')]).as_slice(), [Effect::FetchConsole { .. }]));
    assert!(render(&a, 120, 40).contains("READ-ONLY"));
    keys(&mut a, &[Key::ch('?')]);
    let help = render(&a, 120, 40);
    assert!(help.contains("console log") && !help.contains("reboot"), "help lists exactly what works");
}

#[test]
fn results_of_actions_become_events_and_refresh() {
    let mut a = app();
    let e = stackpilot::domain::Event::new(fixture::now(), "operator:ops", "demo", "reboot", "operator request")
        .target("web-1")
        .result("failed")
        .detail("Cannot 'reboot' instance while it is in vm_state stopped")
        .request_id(Some("req-1".into()));
    let fx = update(&mut a, Msg::ActionDone(e));
    assert!(matches!(fx.as_slice(), [Effect::Refresh { .. }]));
    assert_eq!(a.events[0].request_id.as_deref(), Some("req-1"));
    assert!(a.message.as_ref().unwrap().0.contains("failed"));
    typed(&mut a, ":events");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.len(), 4);
    let screen = render(&a, 200, 60);
    assert!(screen.contains("req-1") && screen.contains("Cannot 'reboot'"));
}

#[test]
fn snapshots_move_rows_but_keep_the_selection() {
    let mut a = app();
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER, Key::ch('j'), Key::ch('j'), Key::ch('j')]);
    let sel = a.view().selected_id.clone();
    let mut snap = fixture::snapshot();
    let c = &mut snap.clouds[0];
    let mut servers: Vec<_> = c.servers.iter().cloned().collect();
    servers.remove(0);
    c.servers = Arc::new(servers);
    update(&mut a, Msg::Snapshot(Arc::new(snap)));
    assert_eq!(a.view().selected_id, sel, "same server after a row above disappeared");
    // Frozen: new snapshots do not move the screen until `f` again.
    keys(&mut a, &[Key::ch('f')]);
    update(&mut a, Msg::Snapshot(Arc::new(fixture::snapshot())));
    assert_eq!(a.rows.len(), 6);
    keys(&mut a, &[Key::ch('f')]);
    assert_eq!(a.rows.len(), 7);
}

#[test]
fn refreshes_that_leave_the_servers_unchanged_keep_the_very_rows() {
    let mut a = app();
    update(&mut a, Msg::Snapshot(Arc::new(fixture::big_snapshot(2000, 50))));
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER, Key::ch('j'), Key::ch('j')]);
    let before = a.rows.ids.clone();
    let sel = a.view().selected_id.clone();
    // New metrics, the same server list: the rows are not made again.
    let mut snap = (*a.snapshot).clone();
    snap.clouds[0].metrics = Arc::new(fixture::big_snapshot(2000, 60).clouds[0].metrics.as_ref().clone());
    update(&mut a, Msg::Snapshot(Arc::new(snap.clone())));
    assert!(Arc::ptr_eq(&before, &a.rows.ids), "same list, sort and filter: the same rows");
    assert_eq!(a.view().selected_id, sel);
    // A filter makes new rows; clearing it gives the whole list back.
    typed(&mut a, "/01999");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.rows.len(), 1);
    keys(&mut a, &[ESC]);
    assert_eq!(a.rows.ids.as_ref(), before.as_ref());
    // A server gone from the list is gone from the rows, whatever was kept.
    let mut servers: Vec<_> = snap.clouds[0].servers.iter().cloned().collect();
    let gone = servers.remove(5).id.clone();
    snap.clouds[0].servers = Arc::new(servers);
    update(&mut a, Msg::Snapshot(Arc::new(snap)));
    assert_eq!(a.rows.len(), 1999);
    assert!(!a.rows.ids.contains(&gone));
}

#[test]
fn an_engine_tick_that_changes_nothing_shown_redraws_only_the_plan() {
    let before = fixture::engine();
    let ticked =
        EngineView { last_tick: before.last_tick.map(|t| t + chrono::Duration::seconds(10)), ..before.clone() };
    assert!(!ticked.redraws(Some(&before), ViewKind::Servers), "only the tick moved");
    assert!(!ticked.redraws(Some(&before), ViewKind::Overview));
    assert!(ticked.redraws(Some(&before), ViewKind::Plan), "the Plan shows the last tick");
    let paused = EngineView { paused: true, ..ticked.clone() };
    assert!(paused.redraws(Some(&before), ViewKind::Servers), "the header shows a pause");
    assert!(before.redraws(None, ViewKind::Servers), "the first status is drawn");
    assert!(!before.redraws(Some(&before), ViewKind::Plan));
}

// ---- rendering ------------------------------------------------------------------

fn render(a: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| stackpilot::tui::view::draw(f, a)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn at(kind: &str, w: u16, h: u16) -> App {
    let mut a = app();
    update(&mut a, Msg::Resize(w, h));
    match kind {
        "overview" => a.engine = Some(fixture::engine()),
        "detail" => {
            typed(&mut a, ":servers");
            keys(&mut a, &[ENTER, Key::ch('j'), Key::ch('j'), Key::ch('j'), ENTER]);
            let id = a.view().server.clone().unwrap();
            update(
                &mut a,
                Msg::Console {
                    server_id: id,
                    result: Ok(
                        "[  0.0] boot\nCloud-init v. 23.4 finished at Wed, 25 Nov 2026 11:59:00 +0000.\nweb-1 login:"
                            .into(),
                    ),
                },
            );
        }
        "plan" => {
            a.engine = Some(EngineView { mode: "dry-run".into(), approval_pending: true, ..fixture::engine() });
            typed(&mut a, ":plan");
            keys(&mut a, &[ENTER]);
        }
        "apps" => {
            a.engine = Some(fixture::engine());
            typed(&mut a, ":apps");
            keys(&mut a, &[ENTER]);
            // Select `web` (the autoscaled one).
            while a.view().selected_id.as_deref() != Some("web") {
                keys(&mut a, &[Key::ch('j')]);
            }
        }
        "policies" => {
            a.engine = Some(fixture::engine());
            typed(&mut a, ":policies");
            keys(&mut a, &[ENTER]);
        }
        "policy" | "form_error" | "review" | "history_diff" => {
            a.engine = Some(fixture::engine());
            a.policies_dir = Some("policies".into());
            typed(&mut a, ":policies");
            keys(&mut a, &[ENTER, Key::ch('j'), ENTER]);
            update(&mut a, Msg::PolicyLoaded(fixture::web_policy_doc()));
            match kind {
                "form_error" => {
                    keys(&mut a, &[Key::ch('c')]);
                    update(&mut a, Msg::PolicyLoaded(fixture::web_policy_doc()));
                    retype(&mut a, 2, "1");
                }
                "review" => {
                    keys(&mut a, &[Key::ch('c')]);
                    update(&mut a, Msg::PolicyLoaded(fixture::web_policy_doc()));
                    retype(&mut a, 2, "3");
                    retype(&mut a, 2, "13");
                    keys(&mut a, &[TAB, ENTER]);
                }
                "history_diff" => {
                    keys(&mut a, &[Key::ch('m'), Key::ch('j'), Key::ch('d')]);
                }
                _ => {}
            }
        }
        "rollout" => {
            let mut e = fixture::engine();
            if let Some(web) = e.apps.iter_mut().find(|x| x.app == "web") {
                web.rollout = Some(stackpilot::engine::rollout::RolloutView {
                    target: 3,
                    from: Some(2),
                    rolling_back: false,
                    new_ready: 1,
                    old: 1,
                    desired: 2,
                    phase: "progressing".into(),
                    deadline: None,
                });
            }
            a.engine = Some(e);
            typed(&mut a, ":apps");
            keys(&mut a, &[ENTER]);
        }
        "died" => {
            a.engine = Some(fixture::engine());
            stackpilot::tui::app::update(
                &mut a,
                Msg::TaskDied("engine died: panicked at src/engine/runner.rs:1:1: boom".into()),
            );
            typed(&mut a, ":plan");
            keys(&mut a, &[ENTER]);
        }
        "volumes" => {
            a.engine = Some(fixture::engine());
            typed(&mut a, ":volumes");
            keys(&mut a, &[ENTER]);
        }
        "restore_confirm" => {
            a.engine = Some(fixture::engine());
            typed(&mut a, ":volumes");
            keys(&mut a, &[ENTER]);
            select_backup(&mut a, "bak-1");
            keys(&mut a, &[Key::ch('R'), ENTER]);
            let mut job = fixture::restore_job();
            job.op = "op-2".into();
            update(&mut a, Msg::RestorePlanned(Ok(Box::new(job))));
        }
        "help" => {
            typed(&mut a, ":servers");
            keys(&mut a, &[ENTER, Key::ch('?')]);
        }
        "help_end" => {
            typed(&mut a, ":servers");
            keys(&mut a, &[ENTER, Key::ch('?'), Key::ch('G')]);
        }
        "first_screen" => {
            a.notice = Some(DEMO_LINE.into());
        }
        "kiosk" => {
            a.engine = Some(fixture::engine());
            a.keymap = Keymap::defaults(true);
            a.read_only = true;
            a.kiosk = Some(stackpilot::tui::app::Kiosk { interval_secs: 15, step: 0, turned_at: fixture::now() });
            update(&mut a, Msg::KioskNext);
        }
        "confirm" => {
            typed(&mut a, ":servers");
            keys(&mut a, &[ENTER, Key::ch('D')]);
        }
        other => {
            typed(&mut a, &format!(":{other}"));
            keys(&mut a, &[ENTER]);
        }
    }
    a
}

fn select_backup(a: &mut App, id: &str) {
    let want = format!("bak:{id}");
    for _ in 0..20 {
        if a.view().selected_id.as_deref() == Some(want.as_str()) {
            return;
        }
        keys(a, &[Key::ch('j')]);
    }
    panic!("no row {want}");
}

const VIEWS: [&str; 22] = [
    "overview",
    "apps",
    "servers",
    "detail",
    "volumes",
    "alerts",
    "events",
    "clouds",
    "plan",
    "help",
    "confirm",
    "policies",
    "died",
    "policy",
    "form_error",
    "review",
    "history_diff",
    "rollout",
    "restore_confirm",
    "help_end",
    "first_screen",
    "kiosk",
];

/// The demo's line as the demo writes it (addresses of the two simulated clouds).
const DEMO_LINE: &str = "demo: simulated clouds demo at http://127.0.0.1:40001/identity/v3 and demo-east at \
     http://127.0.0.1:40002/identity/v3 (user, password and project: demo; 10x speed) · state in /home/ops/.local/state/stackpilot/demo";

#[test]
fn every_view_at_three_sizes() {
    for v in VIEWS {
        for (w, h) in [(80u16, 24u16), (120, 40), (200, 60)] {
            let a = at(v, w, h);
            insta::assert_snapshot!(format!("{v}_{w}x{h}"), render(&a, w, h));
        }
    }
}

// ---- small terminals and honest numbers -------------------------------------------

/// The header row of the table on screen: the line under the box's top border.
fn header_row(screen: &str) -> String {
    screen.lines().nth(2).unwrap_or_default().trim_matches('│').to_string()
}

/// Every word of a header row is a whole title word or ends with the ellipsis.
fn assert_no_mid_word_cut(row: &str, what: &str) {
    for w in row.split_whitespace() {
        let w = w.trim_end_matches(['↑', '↓']);
        assert!(
            common::titles::TITLE_WORDS.contains(&w) || w.ends_with('…') || w.ends_with('~'),
            "{what}: `{w}` is cut without a mark in `{row}`"
        );
    }
}

/// Per table: the columns an 80x24 terminal keeps (in display order) and some it
/// drops; 200 columns show them all.
const NARROW: [(&str, &[&str], &[&str]); 7] = [
    ("servers", &["STATUS", "NAME", "APP", "CPU"], &["ADDRESSES", "AZ", "IMAGE"]),
    ("apps", &["APP", "DESIRED", "WHY", "CPU"], &["FLAVORS", "BUILD"]),
    ("volumes", &["KIND", "NAME", "STATUS", "LAST BACKUP"], &["DETAIL"]),
    ("alerts", &["SEV", "APP", "MESSAGE"], &["SENT"]),
    ("events", &["TIME", "ACTION", "RESULT", "WHY"], &["REQUEST", "ACTOR"]),
    ("clouds", &["CLOUD", "STATUS", "SERVERS"], &["REQUESTS"]),
    ("policies", &["APP", "STATE", "DESIRED"], &["BY", "CHANGED"]),
];

#[test]
fn small_terminals_keep_the_columns_that_matter_in_rank_order() {
    for (v, kept, dropped) in NARROW {
        let row = header_row(&render(&at(v, 80, 24), 80, 24));
        let pos: Vec<usize> =
            kept.iter().map(|c| row.find(c).unwrap_or_else(|| panic!("{v} at 80x24 lost {c}: `{row}`"))).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{v}: {kept:?} in this order: `{row}`");
        for d in dropped {
            assert!(!row.contains(d), "{v} at 80x24 drops {d} before the others: `{row}`");
        }
        assert_no_mid_word_cut(&row, v);
        let wide = header_row(&render(&at(v, 200, 60), 200, 60));
        for c in kept.iter().chain(dropped.iter()) {
            assert!(wide.contains(c), "{v} at 200x60 shows {c}: `{wide}`");
        }
        assert_no_mid_word_cut(&wide, v);
    }
}

#[test]
fn sixty_by_fifteen_renders_every_view_and_marks_every_cut() {
    for v in VIEWS {
        for ascii in [false, true] {
            let mut a = at(v, 60, 15);
            a.ascii = ascii;
            let s = render(&a, 60, 15);
            assert!(s.lines().count() == 15, "{v}");
            if NARROW.iter().any(|(n, _, _)| *n == v) {
                assert_no_mid_word_cut(&header_row(&s), v);
                // The table's lines (not the header or footer): cuts marked `~` in ASCII.
                let body: Vec<&str> = s.lines().skip(1).take(13).collect();
                if ascii {
                    assert!(body.iter().all(|l| !l.contains('…')), "{v}: `…` in --ascii:\n{s}");
                }
            }
        }
    }
    let mut a = at("events", 60, 15);
    let s = render(&a, 60, 15);
    assert!(s.contains("scale out: …"), "cut with a mark at 60 columns:\n{s}");
    a.ascii = true;
    let s = render(&a, 60, 15);
    assert!(s.contains("scale out: ~"), "with `~` in --ascii:\n{s}");
}

#[test]
fn stopped_and_stale_members_read_a_dash_and_aggregates_say_what_they_cover() {
    let s = render(&at("servers", 120, 40), 120, 40);
    let row = |name: &str| -> String {
        let l = s.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_else(|| panic!("{name}:\n{s}"));
        l.trim_end_matches('│').trim_end().to_string()
    };
    assert!(row("web-1").ends_with("88%"), "{}", row("web-1"));
    // Stopped, failed, booting, or reporting no more: no value now.
    for n in ["api-2", "worker-1", "bastion", "web-3"] {
        assert!(row(n).ends_with(" -"), "{n} reads -: {}", row(n));
    }
    // api-2 stopped reporting ten minutes ago: its history ends ten samples short.
    let api2 = row("api-2");
    assert!(api2.contains('▅') && api2.ends_with(&format!("{}-", " ".repeat(11))), "{api2}");
    // The app's CPU: the mean of the members with a value now, and how many.
    let s = render(&at("apps", 120, 40), 120, 40);
    let app_row = |name: &str| s.lines().find(|l| l.contains(&format!("│{name} "))).unwrap().to_string();
    assert!(app_row("api").contains(" 47% (1/2)"), "{}", app_row("api"));
    assert!(app_row("web").contains(" 88% (2/3)"), "{}", app_row("web"));
    assert!(app_row("worker").contains(" - (0/1)"), "{}", app_row("worker"));
    // The tiles say what their numbers are.
    let s = render(&at("overview", 80, 24), 80, 24);
    assert!(s.contains("ready 2/4 · 3 VMs · 0 unhealthy"), "ready of desired, the VMs, the failing:\n{s}");
    assert!(s.contains("ready 0 · 1 VM · 1 unhealthy"), "no policy: ACTIVE, and ERROR as failing:\n{s}");
    assert!(s.contains("88% (2/3)") && s.contains("- (0/1)"), "{s}");
}

#[test]
fn a_paused_server_with_fresh_samples_has_no_value_now() {
    use stackpilot::inventory::snapshot::{cpu_now, ServerSeries};
    let mut m = ServerSeries::new(10, 3600);
    for t in 0..5 {
        m.cpu.push(1000 + t * 60, 40.0);
    }
    let mut s = stackpilot::domain::Server::new("s1", "web-1", stackpilot::domain::ServerStatus::Active);
    assert_eq!(cpu_now(&s, Some(&m), Some(1240)), Some(40.0), "running, newest sample");
    assert_eq!(cpu_now(&s, Some(&m), Some(1240 + 180)), Some(40.0), "three samples behind: still now");
    assert_eq!(cpu_now(&s, Some(&m), Some(1240 + 181)), None, "further behind the cloud's newest: stale");
    for st in ["PAUSED", "SHUTOFF", "SUSPENDED", "SHELVED", "ERROR", "BUILD"] {
        s.status = stackpilot::domain::ServerStatus::parse(st);
        assert_eq!(cpu_now(&s, Some(&m), Some(1240)), None, "{st}: stopped");
    }
}

#[test]
fn console_state_shows_in_the_detail_view() {
    let a = at("detail", 120, 40);
    assert!(matches!(a.console.values().next(), Some(ConsoleState::Text(_))));
    let s = render(&a, 120, 40);
    assert!(s.contains("console log") && s.contains("Cloud-init v. 23.4 finished"));
    assert!(s.contains("CPU %") && s.contains("memory MiB"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]
    #[test]
    fn no_view_panics_at_any_size(v in 0usize..VIEWS.len(), w in 1u16..=300, h in 1u16..=100, ascii in any::<bool>()) {
        let mut a = at(VIEWS[v], w, h);
        a.ascii = ascii;
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| stackpilot::tui::view::draw(f, &a)).unwrap();
    }
}

#[test]
fn names_with_escape_sequences_never_reach_the_terminal() {
    let mut a = app();
    let mut snap = (*a.snapshot).clone();
    let mut c = snap.clouds[0].clone();
    let mut servers = (*c.servers).clone();
    let mut s = (*servers[0]).clone();
    s.name = Some("web\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m".into());
    servers[0] = Arc::new(s);
    c.servers = Arc::new(servers);
    snap.clouds[0] = c;
    update(&mut a, Msg::Snapshot(Arc::new(snap)));
    for view in [":overview", ":servers"] {
        typed(&mut a, view);
        keys(&mut a, &[ENTER]);
        let mut t = Terminal::new(TestBackend::new(160, 40)).unwrap();
        t.draw(|f| stackpilot::tui::view::draw(f, &a)).unwrap();
        for cell in t.backend().buffer().content.iter() {
            assert!(stackpilot::domain::text::is_safe(cell.symbol()), "{view}: {:?}", cell.symbol());
        }
    }
    let s = render(&a, 160, 40);
    assert!(s.contains("web␛]0;pwned␇"), "shown, harmless: {s}");
}

#[test]
fn policy_problems_show_in_apps_plan_and_policies() {
    let a = at("apps", 200, 60);
    let s = render(&a, 200, 60);
    assert!(s.contains("PolicyInvalid"), "the Apps view says the policy of api is invalid:\n{s}");
    let a = at("plan", 200, 60);
    let s = render(&a, 200, 60);
    assert!(s.contains("PolicyInvalid (the last good revision stays in force): policies/api.toml:12:1"), "{s}");
    let a = at("policies", 200, 60);
    let s = render(&a, 200, 60);
    assert!(s.contains("policies/api.toml:12:1: deploy.capacity"), "{s}");
    let api = s.lines().position(|l| l.contains("PolicyInvalid")).unwrap();
    let web = s.lines().position(|l| l.contains("cpu 60 %")).unwrap();
    assert!(api < web, "problems first");
}

#[test]
fn a_dead_engine_shows_a_red_banner_and_the_console_goes_on() {
    let mut a = at("died", 120, 40);
    let s = render(&a, 120, 40);
    assert!(s.contains("engine died — the engine no longer plans or acts; restart stackpilot: panicked at src/engine/runner.rs:1:1: boom"), "{s}");
    // Still a console: keys work, the banner stays.
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    let s = render(&a, 120, 40);
    assert!(s.contains("engine died") && s.contains("Servers"), "{s}");
}

#[test]
fn retiring_an_app_is_typed_confirmed_and_refused_read_only() {
    use stackpilot::tui::app::EngineCommand;
    let mut a = app();
    a.engine = Some(fixture::engine());
    typed(&mut a, ":retire web");
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(matches!(a.mode, Mode::Confirm { confirm_focused: false, typed: Some(_), .. }));
    // A wrong name does nothing.
    typed(&mut a, "wbe");
    assert!(keys(&mut a, &[TAB, ENTER]).is_empty());
    assert!(a.message.as_ref().unwrap().0.contains("does not match"));
    typed(&mut a, ":retire web");
    keys(&mut a, &[ENTER]);
    typed(&mut a, "web");
    assert_eq!(
        keys(&mut a, &[TAB, ENTER]),
        vec![Effect::EngineControl(EngineCommand::Retire { cloud: "demo".into(), app: "web".into() })]
    );
    let mut ro = app_with(true);
    ro.engine = Some(fixture::engine());
    typed(&mut ro, ":retire web");
    assert!(keys(&mut ro, &[ENTER]).is_empty());
    assert!(matches!(ro.mode, Mode::Normal));
    assert!(ro.message.as_ref().unwrap().0.contains("read-only"));
}

#[test]
fn a_backup_is_restored_from_the_volumes_view_after_its_steps_are_confirmed() {
    use stackpilot::engine::restore::Target;
    let mut a = app();
    a.engine = Some(fixture::engine());
    typed(&mut a, ":volumes");
    keys(&mut a, &[ENTER]);
    // Restores come first, each volume is followed by its chains.
    let order: Vec<String> = a.rows.ids.to_vec();
    assert_eq!(
        order,
        vec!["rst:op-restore-1", "vol:vol-web-data", "bak:bak-1", "bak:bak-2", "vol:vol-scratch"],
        "{order:?}"
    );
    // `R` on a volume is not a restore.
    keys(&mut a, &[Key::ch('g')]);
    keys(&mut a, &[Key::ch('j')]);
    assert!(keys(&mut a, &[Key::ch('R')]).is_empty());
    assert!(a.message.as_ref().unwrap().0.contains("select a backup"));
    select_backup(&mut a, "bak-1");
    keys(&mut a, &[Key::ch('R')]);
    assert!(matches!(&a.mode, Mode::Command { input, .. } if input.value() == "restore new web-data-restored"));
    assert_eq!(
        keys(&mut a, &[ENTER]),
        vec![Effect::PlanRestore {
            cloud: "demo".into(),
            backup_id: "bak-1".into(),
            target: Target::NewVolume { name: "web-data-restored".into(), volume_type: None, availability_zone: None }
        }]
    );
    // Over the backup's own volume, by default; a type and a zone for a new one.
    typed(&mut a, ":restore over");
    assert!(
        matches!(&keys(&mut a, &[ENTER])[..], [Effect::PlanRestore { target: Target::Existing { volume_id }, .. }] if volume_id == "vol-web-data")
    );
    typed(&mut a, ":restore new copy type=ssd az=nova");
    assert!(
        matches!(&keys(&mut a, &[ENTER])[..], [Effect::PlanRestore { target: Target::NewVolume { volume_type: Some(t), availability_zone: Some(z), .. }, .. }] if t == "ssd" && z == "nova")
    );
    typed(&mut a, ":restore sideways");
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(a.message.as_ref().unwrap().0.contains(":restore new NAME"));
    // The plan comes back: its steps are confirmed (Cancel focused), then queued.
    let job = fixture::restore_job();
    update(&mut a, Msg::RestorePlanned(Ok(Box::new(job.clone()))));
    assert!(matches!(a.mode, Mode::Confirm { confirm_focused: false, .. }));
    let shown = render(&a, 120, 40);
    assert!(
        shown.contains("2. detach volume web-data from web-1") && shown.contains("5. start server web-1"),
        "{shown}"
    );
    assert_eq!(keys(&mut a, &[TAB, ENTER]), vec![Effect::QueueRestore(Box::new(job.clone()))]);
    // Cancelled, nothing is queued.
    update(&mut a, Msg::RestorePlanned(Ok(Box::new(job))));
    assert!(keys(&mut a, &[ESC]).is_empty());
    // A plan that cannot be made says why.
    update(&mut a, Msg::RestorePlanned(Err("backup bak-2 is creating".into())));
    assert!(a.message.as_ref().unwrap().0.contains("bak-2 is creating"));
    // Read-only, or without an engine: refused.
    let mut ro = app_with(true);
    ro.engine = Some(fixture::engine());
    typed(&mut ro, ":volumes");
    keys(&mut ro, &[ENTER]);
    select_backup(&mut ro, "bak-1");
    typed(&mut ro, ":restore over");
    assert!(keys(&mut ro, &[ENTER]).is_empty());
    assert!(ro.message.as_ref().unwrap().0.contains("read-only"));
    let mut none = app();
    typed(&mut none, ":volumes");
    keys(&mut none, &[ENTER]);
    typed(&mut none, ":restore over");
    assert!(keys(&mut none, &[ENTER]).is_empty());
    assert!(none.message.as_ref().unwrap().0.contains("no engine"));
}

#[test]
fn the_engine_mode_switches_from_the_command_line_and_auto_is_confirmed() {
    use stackpilot::config::settings::EngineMode;
    use stackpilot::tui::app::EngineCommand;
    let mut a = app();
    a.engine = Some(fixture::engine());
    // Toward safety at once.
    typed(&mut a, ":mode dry-run");
    assert_eq!(keys(&mut a, &[ENTER]), vec![Effect::EngineControl(EngineCommand::SetMode(EngineMode::DryRun))]);
    // Toward acting: confirmed, Cancel focused.
    typed(&mut a, ":mode auto");
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(matches!(a.mode, Mode::Confirm { confirm_focused: false, .. }));
    assert_eq!(keys(&mut a, &[TAB, ENTER]), vec![Effect::EngineControl(EngineCommand::SetMode(EngineMode::Auto))]);
    // Nonsense is refused with the choices.
    typed(&mut a, ":mode turbo");
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(a.message.as_ref().unwrap().0.contains(":mode dry-run"));
    // Read-only consoles never let the engine act.
    let mut ro = app_with(true);
    ro.engine = Some(fixture::engine());
    typed(&mut ro, ":mode auto");
    assert!(keys(&mut ro, &[ENTER]).is_empty());
    assert!(matches!(ro.mode, Mode::Normal));
    assert!(ro.message.as_ref().unwrap().0.contains("read-only"));
    // Without an engine there is nothing to switch.
    let mut none = app();
    typed(&mut none, ":mode off");
    assert!(keys(&mut none, &[ENTER]).is_empty());
    assert!(none.message.as_ref().unwrap().0.contains("no engine"));
}

// ---- policy editing ----------------------------------------------------------

fn web_id() -> String {
    stackpilot::policy::policy_id("demo", "web")
}

fn policies_app(read_only: bool) -> App {
    let mut a = app_with(read_only);
    a.engine = Some(fixture::engine());
    a.policies_dir = Some("policies".into());
    typed(&mut a, ":policies");
    keys(&mut a, &[ENTER, Key::ch('j')]);
    assert_eq!(a.view().selected_id.as_deref(), Some(web_id().as_str()));
    a
}

/// The load the console asks for, answered with the fixture's web policy.
fn answer_load(a: &mut App, fx: Vec<Effect>) -> Vec<Effect> {
    assert!(
        matches!(fx.as_slice(), [Effect::LoadPolicy { policy_id, .. }] if *policy_id == web_id()),
        "a load first: {fx:?}"
    );
    update(a, Msg::PolicyLoaded(fixture::web_policy_doc()))
}

/// Move `downs` fields down, clear the field and type `text`.
fn retype(a: &mut App, downs: usize, text: &str) {
    let mut ks = vec![DOWN; downs];
    ks.push(Key::ctrl('u'));
    keys(a, &ks);
    typed(a, text);
}

fn form(a: &App) -> &stackpilot::tui::editing::Form {
    match &a.mode {
        Mode::Form(f) => f,
        other => panic!("not in the form: {other:?}"),
    }
}

fn review(a: &App) -> &stackpilot::tui::editing::Review {
    match &a.mode {
        Mode::Review(r) => r,
        other => panic!("not in a review: {other:?}"),
    }
}

/// The engine's answer to the preview a review asked for: nothing to do now.
fn answer_preview(a: &mut App, fx: Vec<Effect>) {
    let [Effect::Preview { file, text }] = fx.as_slice() else { panic!("no preview asked: {fx:?}") };
    let p = stackpilot::engine::preview::Preview { desired: 2, members: 2, revision: 2, ..Default::default() };
    update(a, Msg::Previewed { file: file.clone(), text: text.clone(), result: Ok(p) });
}

fn saved_request(fx: Vec<Effect>) -> stackpilot::engine::policies::SaveRequest {
    match fx.as_slice() {
        [Effect::SavePolicy(r)] => r.clone(),
        other => panic!("no save: {other:?}"),
    }
}

#[test]
fn raising_max_is_a_quick_edit_reviewed_then_saved() {
    let mut a = policies_app(false);
    let fx = keys(&mut a, &[Key::ch('c')]);
    answer_load(&mut a, fx);
    assert_eq!(
        form(&a).fields.iter().map(|f| f.label.as_str()).collect::<Vec<_>>(),
        ["desired", "min", "max", "target cpu %", "image", "flavor", "mode"]
    );
    retype(&mut a, 2, "12");
    assert!(form(&a).fields.iter().all(|f| f.error.is_none()), "{:?}", form(&a).fields);
    let fx = keys(&mut a, &[ENTER]);
    assert!(matches!(fx.as_slice(), [Effect::Preview { .. }]), "the engine is asked for its plan: {fx:?}");
    let r = review(&a);
    assert_eq!(r.effect, vec!["max 8 → 12"]);
    assert!(r.diff.contains("-capacity = { min = 2, max = 8, desired = 2 }"), "{}", r.diff);
    assert!(r.diff.contains("+capacity = { min = 2, max = 12, desired = 2 }"), "{}", r.diff);
    assert!(!r.confirm_focused, "Cancel first");
    // Enter on Cancel writes nothing.
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(matches!(a.mode, Mode::Normal));
    assert!(a.message.as_ref().unwrap().0.contains("nothing written"));
    // Again, confirmed.
    let fx = keys(&mut a, &[Key::ch('c')]);
    answer_load(&mut a, fx);
    retype(&mut a, 2, "12");
    let fx = keys(&mut a, &[ENTER]);
    // Apply waits for the engine's plan.
    assert!(keys(&mut a, &[TAB, ENTER]).is_empty());
    assert!(a.message.as_ref().unwrap().0.contains("waiting for the engine"));
    keys(&mut a, &[TAB]);
    answer_preview(&mut a, fx);
    let req = saved_request(keys(&mut a, &[TAB, ENTER]));
    let doc = fixture::web_policy_doc();
    let before = doc.text.as_ref().unwrap();
    assert_eq!(req.base_hash.as_deref(), Some(stackpilot::policy::edit::content_hash(before).as_str()));
    assert_eq!(req.text, before.replace("max = 8", "max = 12"), "only the value changes: comments and order stay");
    assert_eq!(req.summary, "max 8 → 12");
    assert!(!req.summary.contains("no plan preview"));
    assert!(req.actor.starts_with("operator:"));
}

#[test]
fn fields_validate_as_typed_and_show_the_error_on_the_field() {
    let mut a = policies_app(false);
    let fx = keys(&mut a, &[Key::ch('c')]);
    answer_load(&mut a, fx);
    // max below min (2): the whole policy is checked; the error sits on max.
    retype(&mut a, 2, "1");
    let max = &form(&a).fields[2];
    assert!(max.error.as_deref().unwrap_or_default().contains("min (2) is above max (1)"), "{max:?}");
    // Not a number.
    retype(&mut a, 0, "x");
    assert!(form(&a).fields[2].error.as_deref().unwrap().contains("not a whole number"));
    // Enter refuses while a field is wrong.
    assert!(keys(&mut a, &[ENTER]).is_empty());
    assert!(matches!(a.mode, Mode::Form(_)));
    retype(&mut a, 0, "8");
    // An image the cloud does not have is named on the image field.
    retype(&mut a, 2, "nope");
    let image = &form(&a).fields[4];
    assert!(image.error.as_deref().unwrap_or_default().contains("no active image `nope`"), "{image:?}");
    // Tab completes from the catalog.
    retype(&mut a, 0, "13");
    keys(&mut a, &[TAB]);
    assert_eq!(form(&a).fields[4].input.value(), "debian-13-genericcloud-amd64");
    assert!(form(&a).fields[4].error.is_none());
    // The mode completes too, and a paused app is one Enter away.
    retype(&mut a, 2, "pa");
    keys(&mut a, &[TAB]);
    assert_eq!(form(&a).fields[6].input.value(), "paused");
    keys(&mut a, &[ENTER]);
    assert_eq!(review(&a).effect[0], "image debian-12-genericcloud-amd64 → debian-13-genericcloud-amd64");
    assert_eq!(review(&a).effect[1], "mode auto → paused");
    // Esc cancels.
    keys(&mut a, &[ESC]);
    assert!(matches!(a.mode, Mode::Normal));
}

#[test]
fn the_preview_of_the_engine_joins_the_effect() {
    use stackpilot::engine::preview::Preview;
    let mut a = policies_app(false);
    let fx = keys(&mut a, &[Key::ch('c')]);
    answer_load(&mut a, fx);
    retype(&mut a, 0, "4");
    let fx = keys(&mut a, &[ENTER]);
    let [Effect::Preview { file, text }] = fx.as_slice() else { panic!("{fx:?}") };
    let p = Preview { desired: 4, members: 2, creates: 2, revision: 2, ..Default::default() };
    update(&mut a, Msg::Previewed { file: file.clone(), text: text.clone(), result: Ok(p) });
    assert_eq!(review(&a).effect, vec!["desired 2 → 4: 2 creates"]);
    // A preview of another text (an older review) changes nothing.
    let p = Preview { desired: 9, creates: 7, ..Default::default() };
    update(&mut a, Msg::Previewed { file: file.clone(), text: "other".into(), result: Ok(p) });
    assert_eq!(review(&a).effect, vec!["desired 2 → 4: 2 creates"]);
}

#[test]
fn the_editor_path_reviews_what_was_saved_and_ignores_no_change() {
    use stackpilot::tui::editing::EditOutcome;
    let mut a = policies_app(false);
    let fx = keys(&mut a, &[Key::ch('e')]);
    let fx = answer_load(&mut a, fx);
    let [Effect::EditPolicy { policy_id, file, text }] = fx.as_slice() else { panic!("{fx:?}") };
    assert_eq!(policy_id.as_deref(), Some(web_id().as_str()));
    let edited = text.replace("debian-12-genericcloud-amd64", "debian-13-genericcloud-amd64");
    let fx = update(
        &mut a,
        Msg::Edited {
            policy_id: policy_id.clone(),
            file: file.clone(),
            base: text.clone(),
            outcome: EditOutcome::Changed(edited.clone()),
        },
    );
    assert!(matches!(fx.as_slice(), [Effect::Preview { .. }]));
    assert_eq!(review(&a).new_text, edited);
    assert_eq!(review(&a).effect, vec!["image debian-12-genericcloud-amd64 → debian-13-genericcloud-amd64"]);
    keys(&mut a, &[ESC]);
    let fx = update(
        &mut a,
        Msg::Edited {
            policy_id: policy_id.clone(),
            file: file.clone(),
            base: text.clone(),
            outcome: EditOutcome::Unchanged,
        },
    );
    assert!(fx.is_empty());
    assert!(matches!(a.mode, Mode::Normal));
    assert!(a.message.as_ref().unwrap().0.contains("no change"));
}

#[test]
fn history_diffs_any_two_changes_and_restores_one_through_the_review() {
    let mut a = policies_app(false);
    let fx = keys(&mut a, &[ENTER]);
    answer_load(&mut a, fx);
    assert_eq!(a.view().kind, ViewKind::PolicyDetail);
    assert_eq!(a.rows.ids.as_ref(), ["2", "1"], "newest first");
    // Mark 2, select 1, diff.
    keys(&mut a, &[Key::ch('m'), Key::ch('j'), Key::ch('d')]);
    let Mode::Raw { text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert!(text.contains("--- web.toml change 1") && text.contains("+++ web.toml change 2"), "older first: {text}");
    assert!(text.contains("+capacity = { min = 2, max = 8, desired = 2 }"), "{text}");
    keys(&mut a, &[ESC]);
    // y shows the selected change as it was written, with who and what.
    keys(&mut a, &[Key::ch('y')]);
    let Mode::Raw { title, text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert!(title.ends_with("change 1"), "{title}");
    assert!(text.contains("by engine:") && text.contains("max = 6"), "{text}");
    keys(&mut a, &[ESC]);
    // Restore change 1: the same review, then a save based on the file now.
    let fx = keys(&mut a, &[Key::ch('R')]);
    assert!(matches!(fx.as_slice(), [Effect::Preview { .. }]));
    assert_eq!(review(&a).effect, vec!["max 8 → 6"]);
    answer_preview(&mut a, fx);
    let req = saved_request(keys(&mut a, &[TAB, ENTER]));
    assert!(req.text.contains("max = 6"));
    let now = fixture::web_policy_doc();
    assert_eq!(
        req.base_hash.as_deref(),
        Some(stackpilot::policy::edit::content_hash(now.text.as_ref().unwrap()).as_str())
    );
}

#[test]
fn a_conflicting_save_shows_both_and_writes_nothing() {
    use stackpilot::tui::editing::{SaveFailure, SavedPolicy};
    let mut a = policies_app(false);
    let fx = update(
        &mut a,
        Msg::PolicySaved(SavedPolicy {
            policy_id: Some(web_id()),
            file: "policies/web.toml".into(),
            result: Err(SaveFailure::Conflict {
                on_disk: "a = 1\n".into(),
                yours: "a = 2\n".into(),
                kept: Some("/state/edits/web-unsaved.toml".into()),
            }),
        }),
    );
    let Mode::Raw { title, text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert!(title.contains("conflict"));
    assert!(text.contains("nothing was written") && text.contains("-a = 1") && text.contains("+a = 2"), "{text}");
    assert!(text.contains("kept in /state/edits/web-unsaved.toml"), "{text}");
    assert!(matches!(fx.as_slice(), [Effect::LoadPolicy { .. }]), "the file is read again: {fx:?}");
}

#[test]
fn a_new_app_starts_from_the_catalog_and_is_created_through_the_review() {
    let mut a = policies_app(false);
    typed(&mut a, ":new-app shop");
    assert!(keys(&mut a, &[ENTER]).is_empty());
    let f = form(&a);
    assert_eq!(f.fields[1].input.value(), "debian-12-genericcloud-amd64", "the first active image");
    assert_eq!(f.fields[3].input.value(), "private");
    assert!(f.fields.iter().all(|f| f.error.is_none()), "{:?}", f.fields);
    keys(&mut a, &[ENTER]);
    assert_eq!(
        review(&a).effect[0],
        "new application shop on demo: desired 2 (min 1, max 4), image debian-12-genericcloud-amd64, flavor m1.medium"
    );
    let (file, text) = (review(&a).file.clone(), review(&a).new_text.clone());
    update(&mut a, Msg::Previewed { file, text, result: Err("no engine answer".into()) });
    let req = saved_request(keys(&mut a, &[TAB, ENTER]));
    assert!(req.summary.ends_with("(no plan preview)"), "{}", req.summary);
    assert_eq!(req.base_hash, None, "a new file must not exist yet");
    assert_eq!(req.file, std::path::Path::new("policies/shop.toml"));
    stackpilot::policy::parse(&req.text, &req.file).unwrap();
    // A bad name is refused on the name field, and so is a name in use.
    typed(&mut a, ":new-app no_good");
    keys(&mut a, &[ENTER]);
    assert!(form(&a).fields[0].error.as_deref().unwrap_or_default().contains("not a valid name"));
    keys(&mut a, &[ESC]);
    typed(&mut a, ":new-app web");
    keys(&mut a, &[ENTER]);
    assert!(form(&a).fields[0].error.as_deref().unwrap_or_default().contains("already an application"));
    assert!(keys(&mut a, &[ENTER]).is_empty() && matches!(a.mode, Mode::Form(_)), "no review");
}

#[test]
fn read_only_binds_no_policy_change() {
    let mut a = policies_app(true);
    for k in ['c', 'e'] {
        assert!(keys(&mut a, &[Key::ch(k)]).is_empty(), "{k}");
        assert!(matches!(a.mode, Mode::Normal));
    }
    let fx = keys(&mut a, &[ENTER]);
    answer_load(&mut a, fx);
    assert!(keys(&mut a, &[Key::ch('j'), Key::ch('R')]).is_empty());
    assert!(matches!(a.mode, Mode::Normal));
    typed(&mut a, ":new-app shop");
    keys(&mut a, &[ENTER]);
    assert!(a.message.as_ref().unwrap().0.contains("read-only"));
    // Help lists none of them; it does list the history keys that only read.
    keys(&mut a, &[Key::ch('?')]);
    let s = render(&a, 120, 40);
    assert!(!s.contains("edit the policy file") && !s.contains("restore the selected"), "{s}");
    assert!(s.contains("diff: selected change"), "{s}");
}

#[test]
fn every_policy_key_is_in_help_and_remappable() {
    let mut a = policies_app(false);
    keys(&mut a, &[Key::ch('?')]);
    let s = render(&a, 120, 40);
    for h in ["change desired/min/max", "edit the policy file", ":new-app NAME"] {
        assert!(s.contains(h), "{h}: {s}");
    }
    let o: std::collections::BTreeMap<String, String> = [("change-policy".to_string(), "C".to_string())].into();
    let k = Keymap::new(&o, &Default::default(), "c.toml", false).unwrap();
    use stackpilot::tui::keymap::Context;
    assert_eq!(k.action(Key::ch('C'), &[Context::Global, Context::Policies]), Some(Action::QuickEdit));
    assert_eq!(k.action(Key::ch('c'), &[Context::Global, Context::Policies]), None);
}

#[test]
fn a_restore_the_cloud_can_no_longer_run_is_shown_and_refused() {
    let mut a = policies_app(false);
    let fx = keys(&mut a, &[ENTER]);
    assert!(matches!(fx.as_slice(), [Effect::LoadPolicy { .. }]));
    let mut doc = fixture::web_policy_doc();
    // Change 1 used an image the cloud no longer has.
    let old = doc.history[1].text.clone().unwrap().replace("debian-12-genericcloud-amd64", "debian-11-gone");
    doc.history[1].text = Some(old);
    update(&mut a, Msg::PolicyLoaded(doc));
    keys(&mut a, &[Key::ch('j'), Key::ch('R')]);
    let r = review(&a);
    assert!(r.problems.iter().any(|p| p.contains("no active image `debian-11-gone`")), "{:?}", r.problems);
    assert!(keys(&mut a, &[TAB, ENTER]).is_empty(), "never applied");
    assert!(a.message.as_ref().unwrap().0.contains("does not validate"));
    assert!(render(&a, 120, 40).contains("cannot be applied: "));
}

#[test]
fn rollouts_are_steered_from_the_command_line_confirmed_and_refused_read_only() {
    use stackpilot::engine::rollout::Command;
    let mut a = app();
    a.engine = Some(fixture::engine());
    typed(&mut a, ":rollout status web");
    assert_eq!(keys(&mut a, &[ENTER]), vec![Effect::RolloutStatus { cloud: "demo".into(), app: "web".into() }]);
    typed(&mut a, ":rollout undo web 2");
    assert!(keys(&mut a, &[ENTER]).is_empty(), "confirmed first");
    assert!(render(&a, 120, 40).contains("Undo the rollout of app web on cloud demo, back to revision 2?"));
    assert_eq!(
        keys(&mut a, &[TAB, ENTER]),
        vec![Effect::Rollout { cloud: "demo".into(), app: "web".into(), cmd: Command::Undo { revision: 2 } }]
    );
    typed(&mut a, ":rollout pause web");
    keys(&mut a, &[ENTER]);
    assert!(render(&a, 120, 40).contains("Pause the rollout of app web on cloud demo?"));
    assert!(keys(&mut a, &[ENTER]).is_empty(), "Cancel is focused");
    typed(&mut a, ":rollout undo web");
    keys(&mut a, &[ENTER]);
    assert!(a.message.as_ref().unwrap().0.contains("which revision"));
    let mut ro = app_with(true);
    typed(&mut ro, ":rollout abort web");
    assert!(keys(&mut ro, &[ENTER]).is_empty());
    assert!(ro.message.as_ref().unwrap().0.contains("read-only"));
    // The Apps view shows a rollout as a progress bar.
    let s = render(&at("rollout", 200, 60), 200, 60);
    assert!(s.contains("r3 ") && s.contains("1/2 -1") && s.contains("RollingUpdate"), "{s}");
}

#[test]
fn alerts_are_acknowledged_and_silenced_from_their_view_and_refused_read_only() {
    use stackpilot::tui::app::AlertOp;
    let mut a = app();
    typed(&mut a, ":alerts");
    keys(&mut a, &[ENTER]);
    let fx = typed(&mut a, "a");
    let [Effect::AlertOp { alert, op: AlertOp::Ack }] = fx.as_slice() else { panic!("{fx:?}") };
    assert!(alert.is_active());
    let fx = typed(&mut a, "s");
    assert!(
        matches!(fx.as_slice(), [Effect::AlertOp { op: AlertOp::Silence(d), .. }] if *d == chrono::Duration::hours(1))
    );
    let mut fx = typed(&mut a, ":silence 4h");
    fx.extend(keys(&mut a, &[ENTER]));
    assert!(
        matches!(fx.as_slice(), [Effect::AlertOp { op: AlertOp::Silence(d), .. }] if *d == chrono::Duration::hours(4))
    );
    // What the store says shows in the view: muted, and where it was sent.
    let key = alert.key.clone();
    let mut ops = stackpilot::engine::notify::AlertOps::default();
    ops.silenced.insert(key.clone(), fixture::now() + chrono::Duration::hours(1));
    let mut book = stackpilot::engine::notify::DeliveryBook::default();
    let d = stackpilot::engine::notify::Delivery {
        since: alert.since,
        alert: (**alert).clone(),
        fired_at: Some(fixture::now()),
        fired: 1,
        resolved_sent: false,
        failures: 0,
        next_try: None,
        last_result: "delivered".into(),
        last_at: Some(fixture::now()),
    };
    book.deliveries.entry("am".into()).or_default().insert(key, d);
    update(&mut a, Msg::Deliveries(book, ops));
    let screen = render(&a, 120, 40);
    assert!(screen.contains("WARNING muted") && screen.contains("am: delivered"), "{screen}");
    // Read-only: nothing changes, and it says so.
    let mut r = app_with(true);
    typed(&mut r, ":alerts");
    keys(&mut r, &[ENTER]);
    assert!(typed(&mut r, "a").is_empty());
    assert!(r.message.as_ref().is_some_and(|m| m.0.contains("read-only")), "{:?}", r.message);
}

#[test]
fn maintenance_is_set_on_the_selected_member_from_the_command_line() {
    let mut a = app();
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    // Find a member of an application (the fixture's web servers are members).
    let mut found = None;
    for _ in 0..20 {
        let mut fx = typed(&mut a, ":maint");
        fx.extend(keys(&mut a, &[ENTER]));
        if let [Effect::Maintenance { on: true, server_id, .. }] = fx.as_slice() {
            found = Some(server_id.clone());
            break;
        }
        keys(&mut a, &[DOWN]);
    }
    let id = found.expect("a member takes :maint");
    let mut fx = typed(&mut a, ":maint off");
    fx.extend(keys(&mut a, &[ENTER]));
    assert!(matches!(fx.as_slice(), [Effect::Maintenance { on: false, server_id, .. }] if *server_id == id));
    let mut fx = typed(&mut a, ":maint maybe");
    fx.extend(keys(&mut a, &[ENTER]));
    assert!(fx.is_empty());
}

fn two_cloud_app(east_down: bool) -> App {
    let mut a = App::new(
        Arc::new(fixture::two_clouds(east_down)),
        Keymap::defaults(false),
        Theme::new(ThemeName::Dark, false),
        fixture::now(),
    );
    a.engine = Some(fixture::engine());
    update(&mut a, Msg::Resize(120, 40));
    a
}

fn row_names(a: &App) -> Vec<String> {
    a.rows
        .ids
        .iter()
        .filter_map(|id| a.row(id).and_then(|(c, s)| c.server(s)).map(|s| s.display_name().to_string()))
        .collect()
}

#[test]
fn several_clouds_merge_with_a_cloud_column_or_show_one_at_a_time() {
    let mut a = two_cloud_app(false);
    assert!(a.all_clouds(), "several clouds start merged");
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    let names = row_names(&a);
    assert_eq!(names.len(), 14, "both clouds' servers: {names:?}");
    assert!(names.iter().any(|n| n == "web-1") && names.iter().any(|n| n == "east-web-1"));
    let screen = render(&a, 120, 40);
    assert!(screen.contains("CLOUD") && screen.contains("demo-east") && screen.contains("all clouds (2)"), "{screen}");
    // One cloud: `:cloud NAME`; no CLOUD column; every cloud again with `:cloud *`.
    typed(&mut a, ":cloud demo-east");
    keys(&mut a, &[ENTER]);
    assert!(!a.all_clouds());
    assert!(row_names(&a).iter().all(|n| n.starts_with("east-")), "{:?}", row_names(&a));
    assert!(!render(&a, 120, 40).contains("CLOUD"));
    typed(&mut a, ":cloud *");
    keys(&mut a, &[ENTER]);
    assert_eq!(row_names(&a).len(), 14);
    // Tab: demo, demo-east, all.
    keys(&mut a, &[TAB]);
    assert_eq!((a.all_clouds(), a.cloud_name().as_str()), (false, "demo"));
    keys(&mut a, &[TAB]);
    assert_eq!((a.all_clouds(), a.cloud_name().as_str()), (false, "demo-east"));
    keys(&mut a, &[TAB]);
    assert!(a.all_clouds());
    // Filters and sorts work across clouds; the filter matches the cloud's name too.
    typed(&mut a, "/web-1");
    keys(&mut a, &[ENTER]);
    assert_eq!(row_names(&a), ["web-1", "east-web-1"]);
    keys(&mut a, &[ESC]);
    typed(&mut a, "/demo-east");
    keys(&mut a, &[ENTER]);
    assert_eq!(row_names(&a).len(), 7, "{:?}", row_names(&a));
    keys(&mut a, &[ESC]);
    keys(&mut a, &[Key::ch('N')]);
    let names = row_names(&a);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name across clouds");
    // The selected row's cloud is the one an action or a drill-down applies to.
    let east = a.rows.ids.iter().position(|id| id.starts_with("demo-east")).unwrap();
    for _ in 0..east {
        keys(&mut a, &[DOWN]);
    }
    assert_eq!(a.cloud_name(), "demo-east");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.view().kind, ViewKind::ServerDetail);
    assert!(render(&a, 120, 40).contains("east-"), "the east server's detail");
}

#[test]
fn a_cloud_that_does_not_answer_never_blanks_the_others() {
    let mut a = two_cloud_app(true);
    let screen = render(&a, 120, 40);
    // The overview: a heading per cloud, the unreachable one says so, the other's tiles stay.
    assert!(screen.contains("▍demo ") && screen.contains("▍demo-east"), "{screen}");
    assert!(screen.contains("unreachable"), "{screen}");
    assert!(screen.contains("instances 7/30"), "quota use per cloud: {screen}");
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    assert!(row_names(&a).iter().any(|n| n == "web-1"), "the reachable cloud's rows are there");
    insta::assert_snapshot!("overview_two_clouds_120x40", render(&two_cloud_app(true), 120, 40));
}

// ---- navigation, dialogs, help, war room, mouse ------------------------------------

fn header_line(a: &App, w: u16) -> String {
    render(a, w, 24).lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_colon_jump_replaces_the_view_and_the_breadcrumb_stays_short() {
    let mut a = app();
    for v in [":servers", ":apps", ":alerts", ":volumes", ":events"] {
        typed(&mut a, v);
        keys(&mut a, &[ENTER]);
    }
    assert_eq!(a.stack().len(), 1, "five jumps, one view");
    let head = header_line(&a, 80);
    assert!(head.contains(" Events "), "{head}");
    for earlier in ["Servers", "Apps", "Alerts", "Volumes", "Overview", "›"] {
        assert!(!head.contains(earlier), "only the current view is named: {head}");
    }
    // Esc walks back through the jumps, each view as it was left.
    keys(&mut a, &[ESC]);
    assert_eq!(a.view().kind, ViewKind::Storage);
    keys(&mut a, &[ESC, ESC, ESC, ESC]);
    assert_eq!(a.view().kind, ViewKind::Overview);
}

#[test]
fn the_breadcrumb_keeps_the_current_view_at_any_width() {
    use stackpilot::tui::view::breadcrumb;
    let c: Vec<String> = ["Apps", "Servers of web", "Server web-1"].iter().map(|s| s.to_string()).collect();
    assert_eq!(breadcrumb(&c, 80), "Apps › Servers of web › Server web-1");
    assert_eq!(breadcrumb(&c, 30), "Apps › … › Server web-1");
    assert_eq!(breadcrumb(&c, 16), "… › Server web-1");
    assert_eq!(breadcrumb(&c, 12), "Server web-1");
    assert_eq!(breadcrumb(&c, 8), "Server …");
    // Drilled three deep on an 80-column terminal: the server's name is on screen.
    let mut a = app();
    a.engine = Some(fixture::engine());
    update(&mut a, Msg::Resize(80, 24));
    typed(&mut a, ":apps");
    keys(&mut a, &[ENTER, Key::ch('j'), ENTER, ENTER]);
    assert_eq!(a.view().kind, ViewKind::ServerDetail);
    let head = header_line(&a, 80);
    assert!(head.contains("Server web-1"), "{head}");
    assert!(head.contains("updated 3s ago"), "{head}");
}

#[test]
fn enter_drills_in_and_esc_comes_back_with_selection_filter_and_sort() {
    let mut a = app();
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER, Key::ch('/')]);
    typed(&mut a, "web");
    keys(&mut a, &[ENTER, Key::ch('N'), Key::ch('j')]);
    let before = (a.view().selected_id.clone(), a.view().filter.clone(), a.view().sort);
    assert_eq!(before.1, "web");
    keys(&mut a, &[ENTER]);
    assert_eq!(a.view().kind, ViewKind::ServerDetail, "Enter drills in");
    assert_eq!(a.stack().len(), 2, "drilling pushes");
    keys(&mut a, &[ESC]);
    assert_eq!(a.view().kind, ViewKind::Servers);
    assert_eq!((a.view().selected_id.clone(), a.view().filter.clone(), a.view().sort), before);
    // A jump away and Esc back: the same again.
    typed(&mut a, ":alerts");
    keys(&mut a, &[ENTER, ESC]);
    assert_eq!(a.view().kind, ViewKind::Servers);
    assert_eq!((a.view().selected_id.clone(), a.view().filter.clone(), a.view().sort), before);
    // Apps → servers of an app → one server, and `-` back out.
    typed(&mut a, ":apps");
    keys(&mut a, &[ENTER, Key::ch('j'), ENTER, ENTER]);
    assert_eq!(
        a.stack().iter().map(|v| v.kind).collect::<Vec<_>>(),
        [ViewKind::Apps, ViewKind::Servers, ViewKind::ServerDetail]
    );
    keys(&mut a, &[ESC]);
    keys(&mut a, &[Key::ch('-')]);
    assert_eq!((a.view().kind, a.view().selected_id.as_deref()), (ViewKind::Apps, Some("web")));
}

#[test]
fn the_first_screen_says_where_you_are_and_what_to_press() {
    let mut a = at("first_screen", 80, 24);
    let s = render(&a, 80, 24);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].contains("Overview"), "{s}");
    let foot = lines[23];
    for hint in [": views", "? help", "q quit"] {
        assert!(foot.contains(hint), "`{hint}` in the footer: {foot}");
    }
    assert!(s.contains("http://127.0.0.1:40001/identity/v3"), "the demo line names the clouds' addresses: {s}");
    assert!(s.contains("esc hides this"), "{s}");
    // Other keys do not hide it (Esc closing help or clearing a filter neither);
    // the first Esc that would go back does, and stays on the view.
    keys(&mut a, &[Key::ch('j'), Key::ch('?'), ESC]);
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    typed(&mut a, "/web");
    keys(&mut a, &[ENTER, ESC]);
    let s = render(&a, 80, 24);
    assert!(s.contains("40001"), "still there: {s}");
    keys(&mut a, &[ESC]);
    let s = render(&a, 80, 24);
    assert!(!s.contains("40001"), "hidden by Esc: {s}");
    assert!(s.lines().next().is_some_and(|l| l.contains("Servers")), "on the same view: {s}");
    keys(&mut a, &[ESC]);
    assert!(render(&a, 80, 24).lines().next().is_some_and(|l| l.contains("Overview")), "then Esc goes back");
}

#[test]
fn every_confirmation_names_the_action_and_the_target() {
    use stackpilot::tui::app::confirm_question;
    let question = |a: &App| match &a.mode {
        Mode::Confirm { pending, .. } => confirm_question(a, pending).text(),
        other => panic!("no confirmation: {other:?}"),
    };
    let mut a = app();
    a.engine = Some(EngineView { mode: "dry-run".into(), approval_pending: true, ..fixture::engine() });
    typed(&mut a, ":plan");
    keys(&mut a, &[ENTER, Key::ch('a')]);
    assert_eq!(question(&a), "Approve the plan for app web on cloud demo?");
    assert!(render(&a, 80, 24).contains("Approve the plan for app web on cloud demo?"));
    keys(&mut a, &[ESC, Key::ch('p')]);
    assert_eq!(question(&a), "Pause the engine on cloud demo?");
    keys(&mut a, &[ESC, Key::ch('A')]);
    assert_eq!(question(&a), "Switch the engine to auto mode on cloud demo (it acts without asking)?");
    keys(&mut a, &[ESC]);
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    for (k, q) in [
        (Key::ch('r'), "Reboot server api-1 on cloud demo (soft reboot)?"),
        (Key::ctrl('r'), "Reboot server api-1 on cloud demo (hard reboot: power cycle)?"),
        (Key::ch('x'), "Stop server api-1 on cloud demo?"),
        (Key::ch('u'), "Start server api-1 on cloud demo?"),
        (Key::ch('D'), "Delete server api-1 on cloud demo?"),
    ] {
        keys(&mut a, &[k]);
        assert_eq!(question(&a), q);
        keys(&mut a, &[ESC]);
    }
    typed(&mut a, ":retire web");
    keys(&mut a, &[ENTER]);
    assert_eq!(question(&a), "Retire app web on cloud demo (every member is removed)?");
    let s = render(&a, 80, 24);
    assert!(s.contains("type the application's name (web) to confirm"), "{s}");
    keys(&mut a, &[ESC]);
    typed(&mut a, ":rollout abort web");
    keys(&mut a, &[ENTER]);
    assert_eq!(question(&a), "Abort the rollout of app web on cloud demo?");
    // Whatever is confirmed, no question reads like a template with holes.
    for v in ["confirm", "restore_confirm"] {
        let s = render(&at(v, 80, 24), 80, 24);
        assert!(!s.contains("Do ") && !s.contains(" on ?") && s.contains("on cloud demo"), "{s}");
    }
}

#[test]
fn read_only_plan_names_no_key_that_is_not_bound() {
    let mut a = app_with(true);
    a.engine = Some(EngineView { mode: "dry-run".into(), approval_pending: true, ..fixture::engine() });
    typed(&mut a, ":plan");
    keys(&mut a, &[ENTER]);
    let s = render(&a, 120, 40);
    assert!(!s.contains("press a"), "`a` is not bound read-only: {s}");
    assert!(s.contains("waits for approval from a console that is not read-only"), "{s}");
    assert!(keys(&mut a, &[Key::ch('a')]).is_empty() && matches!(a.mode, Mode::Normal));
    // Every key the footer and the help name works here.
    keys(&mut a, &[Key::ch('?')]);
    let help = render(&a, 120, 40);
    for hidden in ["carry out the plan", "pause / resume the engine", ":retire", ":new-app", "auto mode"] {
        assert!(!help.contains(hidden), "`{hidden}` is not available read-only: {help}");
    }
    assert!(help.contains(":mode off|dry-run"), "{help}");
}

#[test]
fn help_lists_the_commands_and_scrolls_at_80x24() {
    let mut a = at("help", 80, 24);
    let s = render(&a, 80, 24);
    let lines: Vec<&str> = s.lines().collect();
    let total = stackpilot::tui::app::help_lines(&a).len();
    assert!(total > 22, "more lines than fit: {total}");
    assert!(lines[0].contains(&format!("1-22 of {total}")), "{}", lines[0]);
    assert!(lines[23].starts_with('└'), "the box is whole: {}", lines[23]);
    assert!(lines.iter().all(|l| unicode_width::UnicodeWidthStr::width(*l) <= 80));
    // PgDn, then the end: the last line shows, and `:mode` is listed.
    keys(&mut a, &[Key::code(Code::PageDown)]);
    assert!(render(&a, 80, 24).lines().next().unwrap().contains(&format!("23-{} of {total}", total.min(44))));
    keys(&mut a, &[Key::ch('G')]);
    let end = render(&a, 80, 24);
    assert!(end.lines().next().unwrap().contains(&format!("-{total} of {total}")), "{end}");
    assert!(end.contains(":mode off|dry-run|auto"), "{end}");
    assert!(end.contains(":q"), "{end}");
    keys(&mut a, &[Key::ch('j')]);
    assert_eq!(render(&a, 80, 24), end, "no scrolling past the end");
    keys(&mut a, &[Key::ch('k'), Key::ch('k')]);
    assert_ne!(render(&a, 80, 24), end);
    keys(&mut a, &[ESC]);
    assert!(matches!(a.mode, Mode::Normal), "Esc closes");
    // Every key of the registry that works in Servers is in the help.
    let help = stackpilot::tui::app::help_lines(&a);
    for k in ["r", "x", "D", "l", "enter", "esc", "q ctrl-c", ":servers", ":maint [off]"] {
        assert!(help.iter().any(|l| l.key == k), "{k} listed");
    }
}

#[test]
fn the_kiosk_turns_pages_on_its_timer_and_is_read_only() {
    let mut a = two_cloud_app(false);
    a.keymap = Keymap::defaults(true);
    a.read_only = true;
    a.kiosk = Some(stackpilot::tui::app::Kiosk { interval_secs: 15, step: 0, turned_at: fixture::now() });
    let mut seen = vec![];
    for _ in 0..7 {
        let p = a.kiosk_page().unwrap();
        let s = render(&a, 120, 40);
        assert!(s.contains("WAR ROOM") && s.contains("READ-ONLY"), "{s}");
        let cloud = &a.shown().clouds[p.cloud].name;
        assert!(s.lines().next().unwrap().contains(&format!(" {cloud} ")), "{s}");
        seen.push((cloud.clone(), p.app.clone().unwrap_or_default()));
        update(&mut a, Msg::KioskNext);
    }
    assert_eq!(
        seen,
        [
            ("demo", "api"),
            ("demo", "web"),
            ("demo", "worker"),
            ("demo-east", "api"),
            ("demo-east", "web"),
            ("demo-east", "worker"),
            ("demo", "api")
        ]
        .map(|(c, x)| (c.to_string(), x.to_string()))
    );
    // No key turns it; q still quits; dangerous keys are not bound.
    assert!(keys(&mut a, &[Key::ch('r'), Key::ch('D')]).is_empty());
    assert!(matches!(keys(&mut a, &[Key::ch('q')]).as_slice(), [Effect::Quit]));
}

#[test]
fn a_click_selects_the_row_under_the_pointer_and_the_wheel_moves() {
    use stackpilot::tui::app::MouseKind;
    let mut a = app();
    update(&mut a, Msg::Resize(80, 24));
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    let s = render(&a, 80, 24);
    // Row 0 is the header, 1 the box, 2 the column titles: `bastion` is the third server.
    let y = s.lines().position(|l| l.contains("bastion")).unwrap() as u16;
    update(&mut a, Msg::Mouse { kind: MouseKind::Click, column: 20, row: y });
    assert_eq!(selected_name(&a), "bastion");
    update(&mut a, Msg::Mouse { kind: MouseKind::Click, column: 20, row: 2 });
    assert_eq!(selected_name(&a), "bastion", "a click on the column titles selects nothing");
    update(&mut a, Msg::Mouse { kind: MouseKind::ScrollDown, column: 20, row: y });
    assert_eq!(a.view().selected, 5, "the wheel moves three rows");
    update(&mut a, Msg::Mouse { kind: MouseKind::ScrollUp, column: 20, row: y });
    assert_eq!(selected_name(&a), "bastion");
    // With a banner above, rows move down one line and the click follows them.
    update(&mut a, Msg::TaskDied("poller demo/servers died: boom".into()));
    let s = render(&a, 80, 24);
    let y = s.lines().position(|l| l.contains("api-2")).unwrap() as u16;
    update(&mut a, Msg::Mouse { kind: MouseKind::Click, column: 5, row: y });
    assert_eq!(selected_name(&a), "api-2");
    // The wheel scrolls the help.
    keys(&mut a, &[Key::ch('?')]);
    update(&mut a, Msg::Mouse { kind: MouseKind::ScrollDown, column: 5, row: 5 });
    assert!(matches!(a.mode, Mode::Help { scroll: 3 }));
}

#[test]
fn a_tick_redraws_only_what_the_clock_changed_on_screen() {
    use stackpilot::tui::app::{tick, Redraw};
    let mut a = app();
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER]);
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let last = t.draw(|f| stackpilot::tui::view::draw(f, &a)).unwrap().buffer.clone();
    let at = |ms: i64| fixture::now() + chrono::Duration::milliseconds(ms);
    // The header reads "updated 3s ago"; the servers were created hours ago.
    assert_eq!(tick(&mut a, at(400)), Redraw::Nothing, "within the second nothing on screen moves");
    assert_eq!(tick(&mut a, at(1000)), Redraw::Header, "the data age reads 4s");
    // Drawn over the last frame, the header is what a whole frame shows.
    let partial =
        t.draw(|f| stackpilot::tui::view::draw_header_only(f, &a, Some(last.clone()))).unwrap().buffer.clone();
    let mut whole = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let full = whole.draw(|f| stackpilot::tui::view::draw(f, &a)).unwrap().buffer.clone();
    assert_eq!(partial, full);
    assert_ne!(partial, last, "the age moved");
    // A header shorter than the last one (a stale mark gone, a breadcrumb cut)
    // leaves nothing of the old text: the row is blanked before it is drawn.
    let mut longer = last.clone();
    for x in 0..longer.area.width {
        longer[(x, 0)].set_symbol("X");
    }
    let over = t.draw(|f| stackpilot::tui::view::draw_header_only(f, &a, Some(longer.clone()))).unwrap().buffer.clone();
    assert_eq!(over, full, "no cell of the longer header is left");
    assert_eq!(tick(&mut a, at(1500)), Redraw::Nothing);
    // The metrics turn stale 17 s after their last poll (3 intervals of 5 s and
    // a second): the CPU cells show `-` then, the whole screen is redrawn.
    assert_eq!(tick(&mut a, at(13_900)), Redraw::Header);
    assert_eq!(tick(&mut a, at(14_000)), Redraw::All);
    // Any message but a tick redraws everything.
    t.draw(|f| stackpilot::tui::view::draw(f, &a)).unwrap();
    assert_eq!(tick(&mut a, at(14_200)), Redraw::Nothing);
    keys(&mut a, &[Key::ch('j')]);
    assert_eq!(tick(&mut a, at(14_300)), Redraw::All);
}

#[test]
fn cpu_sorts_as_the_row_shows_it_no_value_for_a_dash() {
    // web-1 stopped: its last CPU value (about 78 %, the highest) is history,
    // and its row shows `-`.
    let mut snap = fixture::snapshot();
    let c = &mut snap.clouds[0];
    let mut list = (*c.servers).clone();
    for s in list.iter_mut().filter(|s| s.display_name() == "web-1") {
        Arc::make_mut(s).status = stackpilot::domain::ServerStatus::Shutoff;
    }
    c.servers = Arc::new(list);
    let mut a = App::new(Arc::new(snap), Keymap::defaults(false), Theme::new(ThemeName::Dark, false), fixture::now());
    update(&mut a, Msg::Resize(120, 40));
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER, Key::ch('C'), Key::ch('C')]);
    assert_eq!(a.view().sort, Some(('C', true)));
    let names = |a: &App| -> Vec<String> {
        a.rows.ids.iter().map(|id| a.cloud_snapshot().unwrap().server(id).unwrap().display_name().to_string()).collect()
    };
    let desc = names(&a);
    // Highest first: the running web-2, then api-1; every row showing `-` (web-1
    // stopped, api-2 whose metrics stopped ten minutes ago, worker-1 failed, web-3
    // building, bastion stopped) after them, as empty cells.
    assert_eq!(&desc[..2], &["web-2", "api-1"], "{desc:?}");
    let mut rest: Vec<&str> = desc[2..].iter().map(String::as_str).collect();
    rest.sort();
    assert_eq!(rest, vec!["api-2", "bastion", "web-1", "web-3", "worker-1"], "{desc:?}");
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| stackpilot::tui::view::draw(f, &a)).unwrap();
    let screen = format!("{:?}", t.backend().buffer());
    let web1 = screen.lines().find(|l| l.contains("web-1")).unwrap().to_string();
    assert!(!web1.contains('%'), "web-1 shows no CPU value: {web1}");
}

#[test]
fn y_on_a_server_reads_its_exact_record_from_its_cloud() {
    let mut a = app_with(true);
    update(&mut a, Msg::Resize(120, 40));
    typed(&mut a, ":servers");
    keys(&mut a, &[ENTER, Key::ch('j')]);
    let fx = keys(&mut a, &[Key::ch('y')]);
    let [Effect::FetchServer { cloud, server_id }] = fx.as_slice() else { panic!("{fx:?}") };
    let (cloud, server_id) = (cloud.clone(), server_id.clone());
    assert_eq!(Some(server_id.as_str()), a.view().selected_key().as_deref(), "the selected server");
    // The raw view opens at once and says what it waits for.
    let Mode::Raw { title, text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert!(title.starts_with("server "), "{title}");
    assert!(text.contains("reading") && text.contains(&cloud) && text.contains(&server_id), "{text}");
    assert!(render(&a, 120, 40).contains("reading the server's record"));
    // A record of another server changes nothing.
    update(&mut a, Msg::ServerRecord { cloud: cloud.clone(), server_id: "other".into(), result: Ok("{}".into()) });
    let Mode::Raw { text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert!(text.contains("reading"), "{text}");
    // The record as the API wrote it.
    let record = "{\n  \"id\": \"x\",\n  \"OS-EXT-STS:vm_state\": \"active\",\n  \"zz\": 1.50\n}";
    update(&mut a, Msg::ServerRecord { cloud: cloud.clone(), server_id: server_id.clone(), result: Ok(record.into()) });
    let Mode::Raw { text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert_eq!(text, record);
    // An error names the cloud, the service and the request id.
    keys(&mut a, &[ESC]);
    assert!(matches!(a.mode, Mode::Normal));
    keys(&mut a, &[Key::ch('y')]);
    let err = format!("compute not found (404): Instance {server_id} could not be found. [cloud {cloud}, GET /servers/{server_id}, request req-1234]");
    update(&mut a, Msg::ServerRecord { cloud: cloud.clone(), server_id: server_id.clone(), result: Err(err) });
    let Mode::Raw { text, .. } = &a.mode else { panic!("{:?}", a.mode) };
    assert!(
        text.contains("compute") && text.contains(&format!("cloud {cloud}")) && text.contains("req-1234"),
        "{text}"
    );
    // Closed before the record came: it is dropped.
    keys(&mut a, &[ESC]);
    keys(&mut a, &[Key::ch('y'), ESC]);
    update(&mut a, Msg::ServerRecord { cloud, server_id, result: Ok(record.into()) });
    assert!(matches!(a.mode, Mode::Normal), "{:?}", a.mode);
}

#[test]
fn a_wide_kiosk_puts_more_tiles_across() {
    use stackpilot::inventory::AppSummary;
    let mut snap = fixture::snapshot();
    let cloud = &mut snap.clouds[0];
    let more: Vec<AppSummary> = cloud
        .apps
        .iter()
        .flat_map(|a| [a.clone(), AppSummary { name: format!("{}-batch", a.name), ..a.clone() }])
        .collect();
    cloud.apps = Arc::new(more);
    let mut a = app();
    update(&mut a, Msg::Snapshot(Arc::new(snap)));
    a.engine = Some(fixture::engine());
    a.keymap = Keymap::defaults(true);
    a.read_only = true;
    a.kiosk = Some(stackpilot::tui::app::Kiosk { interval_secs: 15, step: 0, turned_at: fixture::now() });
    update(&mut a, Msg::Resize(200, 60));
    let s = render(&a, 200, 60);
    // Six applications: four across on 200 columns, the rest below.
    let tops: Vec<usize> = s.lines().map(|l| l.matches(['╭', '┏']).count()).filter(|n| *n > 0).collect();
    assert_eq!(tops, vec![4, 2], "{s}");
    insta::assert_snapshot!("kiosk_six_apps_200x60", s);
    // On 120 columns two fit across.
    update(&mut a, Msg::Resize(120, 40));
    let s = render(&a, 120, 40);
    let tops: Vec<usize> = s.lines().map(|l| l.matches(['╭', '┏']).count()).filter(|n| *n > 0).collect();
    assert_eq!(tops.first(), Some(&2), "{s}");
}
