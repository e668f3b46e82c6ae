//! Aligned text tables for operators' terminals (`report`, `connections`):
//! columns as wide as their widest cell, two spaces apart, numbers
//! right-aligned, the last column unpadded. Every cell is untrusted text,
//! shown escaped and capped ([`crate::text::shown`]).

use std::io::{self, Write};

/// A column: its header and whether its cells are right-aligned numbers.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// The header's text.
    pub header: &'a str,
    /// Right-aligned (numbers).
    pub right: bool,
}

impl<'a> Column<'a> {
    /// A left-aligned column of text.
    pub fn left(header: &'a str) -> Column<'a> {
        Column {
            header,
            right: false,
        }
    }

    /// A right-aligned column of numbers.
    pub fn right(header: &'a str) -> Column<'a> {
        Column {
            header,
            right: true,
        }
    }
}

/// Writes the header row and `rows` (each as many cells as `columns`).
pub fn write(out: &mut impl Write, columns: &[Column<'_>], rows: &[Vec<String>]) -> io::Result<()> {
    let mut layout = Layout::new(columns);
    for row in rows {
        layout.measure(row);
    }
    layout.header(out)?;
    for row in rows {
        layout.row(out, row)?;
    }
    Ok(())
}

/// A table written in two passes, for rows too many to hold: every row is
/// [`measure`](Layout::measure)d, then the [`header`](Layout::header) and
/// each [`row`](Layout::row) are written as they come again. Only the
/// columns' widths are kept between the passes.
#[derive(Debug, Clone)]
pub struct Layout<'a> {
    columns: &'a [Column<'a>],
    widths: Vec<usize>,
}

impl<'a> Layout<'a> {
    /// A layout as wide as the headers.
    pub fn new(columns: &'a [Column<'a>]) -> Layout<'a> {
        Layout {
            columns,
            widths: columns.iter().map(|c| c.header.len()).collect(),
        }
    }

    /// Widens the columns for `row`'s cells, as they will be shown.
    pub fn measure(&mut self, row: &[String]) {
        for (w, cell) in self.widths.iter_mut().zip(row) {
            *w = (*w).max(crate::text::shown(cell).chars().count());
        }
    }

    /// Writes the header row.
    pub fn header(&self, out: &mut impl Write) -> io::Result<()> {
        self.line(out, &mut self.columns.iter().map(|c| c.header))
    }

    /// Writes one row, escaped and aligned to the widths measured.
    pub fn row(&self, out: &mut impl Write, row: &[String]) -> io::Result<()> {
        let shown: Vec<std::borrow::Cow<'_, str>> =
            row.iter().map(|c| crate::text::shown(c)).collect();
        self.line(out, &mut shown.iter().map(|c| c.as_ref()))
    }

    fn line(&self, out: &mut impl Write, cells: &mut dyn Iterator<Item = &str>) -> io::Result<()> {
        let mut text = String::new();
        for (i, ((cell, w), col)) in cells.zip(&self.widths).zip(self.columns).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if col.right {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < self.columns.len() {
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_text_left_numbers_right_and_leaves_the_last_column_unpadded() {
        let mut out = Vec::new();
        write(
            &mut out,
            &[
                Column::left("NAME"),
                Column::right("N"),
                Column::left("NOTE"),
            ],
            &[
                vec!["a".into(), "1000".into(), "x".into()],
                vec!["long-name".into(), "7".into(), "".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME          N  NOTE\na          1000  x\nlong-name     7  \n"
        );
    }

    #[test]
    fn cells_are_escaped() {
        let mut out = Vec::new();
        write(
            &mut out,
            &[Column::left("A"), Column::left("B")],
            &[vec!["\x1b[2J".into(), "x\ny".into()]],
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A      B\n\\e[2J  x\\ny\n");
    }
}
