//! The progress display on stderr: on a terminal (indicatif) a spinner for each setup step, a bar
//! over the generation time with live counts, then spinners for draining and verifying; off a
//! terminal (CI logs, `| tee`) the same steps as plain lines, with the generation's counts every
//! [`PLAIN_UPDATE_INTERVAL`]. Hidden in tests.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the spinner moves.
const TICK: Duration = Duration::from_millis(120);

/// Least time between two plain progress lines of the generation.
pub const PLAIN_UPDATE_INTERVAL: Duration = Duration::from_secs(10);

/// The run's progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    display: Display,
}

#[derive(Debug, Clone)]
enum Display {
    Bar(ProgressBar),
    /// Plain lines; when the last generation line was printed.
    Plain(Arc<Mutex<Option<Instant>>>),
    Hidden,
}

impl Progress {
    /// A display on stderr (a live one on a terminal, plain lines elsewhere), or a hidden one.
    pub fn new(visible: bool) -> Self {
        let display = match (visible, std::io::stderr().is_terminal()) {
            (false, _) => Display::Hidden,
            (true, true) => Display::Bar(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::stderr(),
            )),
            (true, false) => Display::Plain(Arc::default()),
        };
        Self { display }
    }

    /// Starts a step shown as a spinner with `message`.
    pub fn step(&self, message: impl Into<String>) {
        match &self.display {
            Display::Bar(bar) => {
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} [{elapsed_precise}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_length(0);
                bar.set_message(message.into());
                bar.enable_steady_tick(TICK);
            }
            Display::Plain(_) => eprintln!("==> {}", message.into()),
            Display::Hidden => {}
        }
    }

    /// Prints a finished step above the display.
    pub fn done(&self, message: impl AsRef<str>) {
        self.print(format!("  ✓ {}", message.as_ref()));
    }

    /// Prints a warning above the display.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.print(format!("  ! {}", message.as_ref()));
    }

    fn print(&self, line: String) {
        match &self.display {
            Display::Bar(bar) => bar.println(line),
            Display::Plain(_) => eprintln!("{line}"),
            Display::Hidden => {}
        }
    }

    /// Switches to a bar of `seconds` (the generation).
    pub fn timed(&self, seconds: u64, message: impl Into<String>) {
        match &self.display {
            Display::Bar(bar) => {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.cyan} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} s  {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_length(seconds);
                bar.set_position(0);
                bar.set_message(message.into());
            }
            Display::Plain(_) => eprintln!("==> {} ({seconds} s)", message.into()),
            Display::Hidden => {}
        }
    }

    /// Sets the bar's position (seconds elapsed) and message.
    pub fn update(&self, position: u64, message: impl Into<String>) {
        match &self.display {
            Display::Bar(bar) => {
                bar.set_position(position);
                bar.set_message(message.into());
            }
            Display::Plain(last) => {
                if plain_line_due(last, Instant::now()) {
                    eprintln!("  [{position} s] {}", message.into());
                }
            }
            Display::Hidden => {}
        }
    }

    /// Sets only the message.
    pub fn message(&self, message: impl Into<String>) {
        if let Display::Bar(bar) = &self.display {
            bar.set_message(message.into());
        }
    }

    /// Removes the display.
    pub fn finish(&self) {
        if let Display::Bar(bar) = &self.display {
            bar.finish_and_clear();
        }
    }
}

/// Whether a plain generation line is due at `now` (then `now` is remembered).
fn plain_line_due(last: &Mutex<Option<Instant>>, now: Instant) -> bool {
    let mut last = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let due = last.is_none_or(|at| now.duration_since(at) >= PLAIN_UPDATE_INTERVAL);
    if due {
        *last = Some(now);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_generation_lines_come_at_most_every_interval() {
        let last = Mutex::new(None);
        let start = Instant::now();
        assert!(plain_line_due(&last, start), "the first one");
        assert!(!plain_line_due(&last, start + Duration::from_secs(3)));
        assert!(plain_line_due(&last, start + PLAIN_UPDATE_INTERVAL));
        assert!(!plain_line_due(
            &last,
            start + PLAIN_UPDATE_INTERVAL + Duration::from_secs(1)
        ));
    }
}
