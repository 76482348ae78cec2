//! One frame of the Servers view with 10,000 servers and 100 visible sparklines,
//! and the row computation (filter + sort) behind it.

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

fn servers_app(w: u16, h: u16) -> App {
    let snap = Arc::new(stackpilot::tui::fixture::big_snapshot(10_000, 500));
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
    let a = servers_app(w, h);
    assert_eq!(a.rows.len(), 10_000);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    c.bench_function("servers view frame, 10k servers, 100 sparklines", |b| {
        b.iter(|| {
            t.draw(|f| stackpilot::tui::view::draw(f, black_box(&a))).unwrap();
        })
    });
    let mut a2 = servers_app(w, h);
    c.bench_function("servers rows (filter + sort by CPU), 10k servers", |b| {
        b.iter(|| {
            a2.view_mut_for_bench().sort = Some(('C', true));
            a2.refresh_rows();
            black_box(a2.rows.len())
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = frame
}
criterion_main!(benches);
