//! Colours: a dark and a light palette, and a monochrome one for `NO_COLOR`,
//! 16-colour terminals and `theme = "mono"` (emphasis by modifiers only).

use crate::config::settings::Theme as ThemeName;
use crate::domain::ServerStatus;
use ratatui::style::{Color, Modifier, Style};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Theme {
    pub mono: bool,
    pub fg: Color,
    pub dim: Color,
    pub accent: Color,
    pub ok: Color,
    pub warn: Color,
    pub bad: Color,
    pub selected_bg: Color,
    pub header_bg: Color,
}

impl Theme {
    pub fn new(name: ThemeName, no_color: bool) -> Theme {
        if no_color || name == ThemeName::Mono {
            return Theme {
                mono: true,
                fg: Color::Reset,
                dim: Color::Reset,
                accent: Color::Reset,
                ok: Color::Reset,
                warn: Color::Reset,
                bad: Color::Reset,
                selected_bg: Color::Reset,
                header_bg: Color::Reset,
            };
        }
        match name {
            ThemeName::Light => Theme {
                mono: false,
                fg: Color::Black,
                dim: Color::DarkGray,
                accent: Color::Blue,
                ok: Color::Green,
                warn: Color::Rgb(180, 110, 0),
                bad: Color::Red,
                selected_bg: Color::Rgb(210, 225, 245),
                header_bg: Color::Rgb(225, 225, 225),
            },
            _ => Theme {
                mono: false,
                fg: Color::Reset,
                dim: Color::DarkGray,
                accent: Color::Cyan,
                ok: Color::Green,
                warn: Color::Yellow,
                bad: Color::Red,
                selected_bg: Color::Rgb(40, 60, 90),
                header_bg: Color::Rgb(30, 30, 40),
            },
        }
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg)
    }
    pub fn dim(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::DIM)
        } else {
            Style::default().fg(self.dim)
        }
    }
    pub fn accent(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default().fg(self.accent)
        }
    }
    pub fn ok(&self) -> Style {
        if self.mono {
            Style::default()
        } else {
            Style::default().fg(self.ok)
        }
    }
    pub fn warn(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::ITALIC)
        } else {
            Style::default().fg(self.warn)
        }
    }
    pub fn bad(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::default().fg(self.bad)
        }
    }
    pub fn selected(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().bg(self.selected_bg).add_modifier(Modifier::BOLD)
        }
    }
    pub fn header(&self) -> Style {
        if self.mono {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default().bg(self.header_bg).fg(self.fg)
        }
    }
    pub fn title(&self) -> Style {
        self.accent().add_modifier(Modifier::BOLD)
    }
    /// Red for errors, amber for transitions, green when running.
    pub fn status(&self, s: &ServerStatus) -> Style {
        if s.is_error() {
            self.bad()
        } else if s.is_transitional() {
            self.warn()
        } else if *s == ServerStatus::Active {
            self.ok()
        } else {
            self.dim()
        }
    }
    pub fn severity(&self, s: crate::domain::Severity) -> Style {
        match s {
            crate::domain::Severity::Critical => self.bad(),
            crate::domain::Severity::Warning => self.warn(),
            crate::domain::Severity::Info => self.base(),
        }
    }
}
