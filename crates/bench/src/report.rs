//! The results table: every figure next to its target, with PASS or MISS.

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub measured: String,
    pub target: String,
    /// `None` for figures printed for information, without a target.
    pub pass: Option<bool>,
}

impl Row {
    pub fn judged(figure: impl Into<String>, measured: String, target: &str, pass: bool) -> Self {
        Self {
            figure: figure.into(),
            measured,
            target: target.to_string(),
            pass: Some(pass),
        }
    }

    pub fn info(figure: impl Into<String>, measured: String) -> Self {
        Self {
            figure: figure.into(),
            measured,
            target: "-".to_string(),
            pass: None,
        }
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "info",
        }
    }
}

/// Prints the rows as an aligned table (also valid Markdown).
pub fn print_table(rows: &[Row]) {
    let headers = ["Figure", "Measured", "Target", "Result"];
    let cells: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| [&*r.figure, &*r.measured, &*r.target, r.verdict()])
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 4]| {
        let padded: Vec<String> = cols
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(headers);
    let rules = widths.map(|w| "-".repeat(w));
    line([&rules[0], &rules[1], &rules[2], &rules[3]]);
    for row in cells {
        line(row);
    }
    let missed = rows.iter().filter(|r| r.pass == Some(false)).count();
    let judged = rows.iter().filter(|r| r.pass.is_some()).count();
    println!();
    println!("{} of {judged} targets met.", judged - missed);
}
