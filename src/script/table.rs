//! Aligned text tables, like `ss` and `lsof` print: a header row, columns
//! padded to their widest cell, numbers right-aligned, the last column
//! left unpadded so long paths do not drag trailing blanks.

pub struct Table {
    headers: Vec<&'static str>,
    /// Which columns hold numbers (right-aligned).
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `columns`: each header, and whether its column is numeric.
    pub fn new(columns: &[(&'static str, bool)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| *h).collect(),
            numeric: columns.iter().map(|(_, n)| *n).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row. Cells are shown escaped: a newline or an escape
    /// sequence in a name the target chose cannot forge a row or rewrite
    /// the screen.
    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        let row = row
            .into_iter()
            .map(|cell| super::output::escape_controls(&cell).into_owned())
            .collect();
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        std::iter::once(&headers)
            .chain(&self.rows)
            .map(|row| self.line(row, &widths))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn line(&self, row: &[String], widths: &[usize]) -> String {
        let last = row.len().saturating_sub(1);
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let w = widths[i];
                match (self.numeric[i], i == last) {
                    (true, _) => format!("{cell:>w$}"),
                    (false, true) => cell.clone(),
                    (false, false) => format!("{cell:<w$}"),
                }
            })
            .collect();
        cells.join("  ").trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_aligns() {
        let mut t = Table::new(&[("FD", true), ("KIND", false), ("PATH", false)]);
        t.push(vec!["3".into(), "socket".into(), "socket:[1]".into()]);
        t.push(vec!["10".into(), "file".into(), "/tmp/x".into()]);
        assert_eq!(
            t.render(),
            "FD  KIND    PATH\n 3  socket  socket:[1]\n10  file    /tmp/x"
        );
    }

    #[test]
    fn control_characters_cannot_forge_rows() {
        let mut t = Table::new(&[("FD", true), ("PATH", false)]);
        t.push(vec!["3".into(), "/tmp/a\n 4  /etc/shadow\x1b[2J".into()]);
        assert_eq!(t.render(), "FD  PATH\n 3  /tmp/a\\n 4  /etc/shadow\\e[2J");
        let mut t = Table::new(&[("PATH", false)]);
        t.push(vec!["a\u{202e}fdp.exe\u{9b}".into()]);
        assert_eq!(t.render(), "PATH\na\\u{202e}fdp.exe\\x9b");
    }
}
