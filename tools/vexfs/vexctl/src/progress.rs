// SPDX-License-Identifier: GPL-2.0

//! Progress of long operations on standard error: a bar redrawn in place on
//! a terminal, a plain line every few seconds otherwise.

use std::{
    io::{
        IsTerminal,
        Write, //
    },
    time::{
        Duration,
        Instant, //
    },
};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing.
    Quiet,
    /// A bar, redrawn in place.
    Bar,
    /// A line now and then.
    Lines,
}

/// Progress of `total` items.
pub struct Progress {
    mode: Mode,
    what: &'static str,
    total: u64,
    start: Instant,
    last: Instant,
    every: Duration,
}

impl Progress {
    /// Chooses the mode from `quiet` and whether standard error is a terminal.
    pub fn new(what: &'static str, total: u64, quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Self::with_mode(what, total, mode)
    }

    /// Progress shown in the given mode.
    pub fn with_mode(what: &'static str, total: u64, mode: Mode) -> Self {
        let now = Instant::now();
        let every = if mode == Mode::Bar {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        Progress {
            mode,
            what,
            total,
            start: now,
            last: now,
            every,
        }
    }

    /// Reports `done` items, if it is time to.
    pub fn update(&mut self, done: u64) {
        if self.mode == Mode::Quiet || self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let line = render(self.mode, self.what, done, self.total, self.start.elapsed());
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(line.as_bytes());
        let _ = e.flush();
    }

    /// Ends the bar (the caller prints the summary).
    pub fn finish(&mut self, done: u64) {
        if self.mode == Mode::Bar {
            let line = render(self.mode, self.what, done, self.total, self.start.elapsed());
            eprintln!("{}", line);
        }
    }
}

/// Text of one report.
pub fn render(mode: Mode, what: &str, done: u64, total: u64, elapsed: Duration) -> String {
    #[allow(clippy::cast_precision_loss, clippy::float_arithmetic)]
    let (frac, rate) = {
        let secs = elapsed.as_secs_f64();
        let frac = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        (frac.clamp(0.0, 1.0), rate)
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::float_arithmetic
    )]
    let pct = (frac * 100.0) as u32;
    match mode {
        Mode::Bar => {
            const WIDTH: usize = 30;
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::float_arithmetic
            )]
            let fill = ((frac * WIDTH as f64) as usize).min(WIDTH);
            format!(
                "\r{} [{}{}] {:3}% {}/{} {:.0}/s ",
                what,
                "#".repeat(fill),
                "-".repeat(WIDTH - fill),
                pct,
                done,
                total,
                rate
            )
        }
        _ => format!("{}: {}/{} ({}%), {:.0}/s\n", what, done, total, pct, rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let s = render(Mode::Bar, "insert", 50, 100, Duration::from_secs(2));
        assert_eq!(
            s,
            format!(
                "\rinsert [{}{}]  50% 50/100 25/s ",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        let s = render(Mode::Lines, "insert", 100, 100, Duration::from_secs(4));
        assert_eq!(s, "insert: 100/100 (100%), 25/s\n");
        let s = render(Mode::Lines, "insert", 0, 0, Duration::ZERO);
        assert_eq!(s, "insert: 0/0 (100%), 0/s\n");
    }
}
