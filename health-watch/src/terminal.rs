//! The terminal while the live table is up.

use crate::output::Output;

/// The terminal while the live table is up: alternate screen, no cursor;
/// restored when dropped.
pub(super) struct Screen {
    out: std::io::Stdout,
}

impl Screen {
    pub(super) fn enter() -> Screen {
        let mut out = std::io::stdout();
        let _ = crossterm::execute!(
            out,
            crossterm::terminal::EnterAlternateScreen,
            crossterm::cursor::Hide
        );
        Screen { out }
    }

    pub(super) fn draw(&mut self, output: &Output) {
        let _ = output.draw(&mut self.out.lock());
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = crossterm::execute!(
            self.out,
            crossterm::cursor::Show,
            crossterm::terminal::LeaveAlternateScreen
        );
    }
}
