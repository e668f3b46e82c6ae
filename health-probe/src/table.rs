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
    let rows: Vec<Vec<std::borrow::Cow<'_, str>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::text::shown(c)).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.header.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, ((cell, w), col)) in cells.zip(&widths).zip(columns).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if col.right {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if i + 1 < columns.len() {
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        writeln!(out, "{text}")
    };
    line(&mut columns.iter().map(|c| c.header))?;
    for row in &rows {
        line(&mut row.iter().map(|c| c.as_ref()))?;
    }
    Ok(())
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
