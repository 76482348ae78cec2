//! One frame of the Servers view with 10,000 and 100,000 servers and 100 visible
//! sparklines, the row computation (filter + sort) behind it, and a `/` filter
//! typed key by key (the rows are computed again at each key, from the last
//! ones when the filter only narrows), and the first key of a filter alone.

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

use criterion::{criterion_group, criterion_main, Criterion};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use stackpilot::config::settings::Theme as ThemeName;
use stackpilot::tui::app::{update, App, Msg};
use stackpilot::tui::keymap::{Code, Key, Keymap};
use stackpilot::tui::theme::Theme;
use std::hint::black_box;
use std::sync::Arc;

fn servers_app(n: usize, w: u16, h: u16) -> App {
    let snap = Arc::new(stackpilot::tui::fixture::big_snapshot(n, 500));
    let mut a =
        App::new(snap, Keymap::defaults(false), Theme::new(ThemeName::Dark, false), stackpilot::tui::fixture::now());
    update(&mut a, Msg::Resize(w, h));
    for c in ":servers".chars() {
        update(&mut a, Msg::Key(Key::ch(c)));
    }
    update(&mut a, Msg::Key(Key::code(Code::Enter)));
    a
}

fn frame(c: &mut Criterion) {
    // 106 rows: 100 table rows visible, each with a CPU sparkline (the first 500
    // servers have metrics).
    let (w, h) = (200, 106);
    for (n, label) in [(10_000, "10k"), (100_000, "100k")] {
        let a = servers_app(n, w, h);
        assert_eq!(a.rows.len(), n);
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        c.bench_function(&format!("servers view frame, {label} servers, 100 sparklines"), |b| {
            b.iter(|| {
                t.draw(|f| stackpilot::tui::view::draw(f, black_box(&a))).unwrap();
            })
        });
        let mut a2 = servers_app(n, w, h);
        c.bench_function(&format!("servers rows (filter + sort by CPU), {label} servers"), |b| {
            b.iter(|| {
                a2.view_mut_for_bench().sort = Some(('C', true));
                // From nothing: what a new poll's data costs (the cache would
                // answer an unchanged one).
                a2.row_cache = Default::default();
                a2.refresh_rows();
                black_box(a2.rows.len())
            })
        });
        // Typing `/app-07-0` then Esc: nine row computations (one a key, each
        // narrowing the last; Esc back to every row), as an operator types.
        let mut a3 = servers_app(n, w, h);
        c.bench_function(&format!("servers filter typed (/app-07-0 Esc: 9 keys), {label} servers"), |b| {
            b.iter(|| {
                update(&mut a3, Msg::Key(Key::ch('/')));
                for ch in "app-07-0".chars() {
                    update(&mut a3, Msg::Key(Key::ch(ch)));
                }
                let shown = a3.rows.len();
                update(&mut a3, Msg::Key(Key::code(Code::Esc)));
                black_box(shown)
            })
        });
        assert_eq!(a3.rows.len(), n, "Esc clears the filter");
        // One key alone, the costliest: the first of a filter, from every row,
        // one that every row matches (all names hold "a"). Only the key is timed.
        let mut a4 = servers_app(n, w, h);
        c.bench_function(&format!("servers filter, first key (/a, every row matches), {label} servers"), |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    update(&mut a4, Msg::Key(Key::ch('/')));
                    let t = std::time::Instant::now();
                    update(&mut a4, Msg::Key(Key::ch('a')));
                    spent += t.elapsed();
                    black_box(a4.rows.len());
                    update(&mut a4, Msg::Key(Key::code(Code::Esc)));
                }
                spent
            })
        });
        assert_eq!(a4.rows.len(), n, "Esc clears the filter");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = frame
}
criterion_main!(benches);
