//! Tables and JSON for the one-shot commands, shaped like `openstack ... list`.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Rows of string cells under named columns.
pub struct Table {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[&'static str]) -> Self {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }
    /// A row; cells are made safe for a terminal (names and messages come from
    /// the cloud, where anyone may put escape sequences in them).
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row.into_iter().map(|c| crate::domain::text::sanitize(&c).into_owned()).collect());
    }

    /// The `openstack` CLI's box table.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(c.chars().count());
            }
        }
        let sep: String = {
            let mut s = String::from("+");
            for w in &widths {
                s.push_str(&"-".repeat(w + 2));
                s.push('+');
            }
            s
        };
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                s.push(' ');
                s.push_str(c);
                s.push_str(&" ".repeat(w - c.chars().count()));
                s.push_str(" |");
            }
            s
        };
        let mut out = String::new();
        out.push_str(&sep);
        out.push('\n');
        out.push_str(&line(&self.columns.iter().map(|c| c.to_string()).collect::<Vec<_>>()));
        out.push('\n');
        out.push_str(&sep);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        if !self.rows.is_empty() {
            out.push_str(&sep);
            out.push('\n');
        }
        out
    }

    /// A JSON array of objects keyed by column name (`openstack -f json`).
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    for (i, c) in self.columns.iter().enumerate() {
                        m.insert(c.to_string(), Value::String(r.get(i).cloned().unwrap_or_default()));
                    }
                    Value::Object(m)
                })
                .collect(),
        )
    }

    /// Write the table to stdout (an error when stdout is closed, e.g. `| head`).
    pub fn print(&self, f: Format) -> std::io::Result<()> {
        match f {
            Format::Table => super::emit(&self.render()),
            Format::Json => {
                let text = serde_json::to_string_pretty(&self.to_json()).map_err(std::io::Error::other)?;
                super::emit(&format!("{text}\n"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_openstack_cli() {
        let mut t = Table::new(&["ID", "Name"]);
        t.push(vec!["1".into(), "m1.tiny".into()]);
        assert_eq!(
            t.render(),
            "+----+---------+\n| ID | Name    |\n+----+---------+\n| 1  | m1.tiny |\n+----+---------+\n"
        );
        assert_eq!(t.to_json()[0]["Name"], "m1.tiny");
        assert_eq!(Table::new(&["A"]).render(), "+---+\n| A |\n+---+\n");
        let mut t = Table::new(&["Name"]);
        t.push(vec!["web\u{1b}]0;pwned\u{7}\u{1b}[2J".into()]);
        assert!(!t.render().contains('\u{1b}'), "{}", t.render());
        assert!(t.render().contains("web␛]0;pwned␇␛[2J"));
    }
}
