//! The benchmark's output: Markdown tables with aligned columns, and the
//! targets of the issues, printed PASS/FAIL at the end (never asserted).

use std::fmt::Write as _;

/// A Markdown table with aligned columns.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map_or("", String::as_str);
                let _ = write!(s, " {cell:<w$} |");
            }
            s
        };
        println!("{}", line(&self.rows[0]));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("{}", line(&rule));
        for r in &self.rows[1..] {
            println!("{}", line(r));
        }
    }
}

/// Targets of the issue, printed at the end.
#[derive(Default)]
pub struct Report {
    targets: Vec<(String, String, Option<bool>)>,
}

impl Report {
    pub fn target(&mut self, what: String, measured: String, pass: bool) {
        self.targets.push((what, measured, Some(pass)));
    }

    pub fn skipped(&mut self, what: String) {
        self.targets.push((what, "not measured".into(), None));
    }

    pub fn print_targets(&self) {
        if self.targets.is_empty() {
            return;
        }
        println!("\n## Targets\n");
        let mut table = Table::new(&["target", "measured", "result"]);
        for (what, measured, pass) in &self.targets {
            let result = match pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            };
            table.row(vec![what.clone(), measured.clone(), result.into()]);
        }
        table.print();
    }
}
