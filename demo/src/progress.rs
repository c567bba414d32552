//! The progress display on stderr (indicatif): a spinner for each setup step, a bar over the
//! generation time with live counts, then spinners for draining and verifying. Hidden in tests
//! and when stderr is not a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the spinner moves.
const TICK: Duration = Duration::from_millis(120);

/// The run's progress display.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A display on stderr (drawn only on a terminal), or a hidden one.
    pub fn new(visible: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            None,
            if visible {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        Self { bar }
    }

    /// Starts a step shown as a spinner with `message`.
    pub fn step(&self, message: impl Into<String>) {
        self.bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.bar.set_length(0);
        self.bar.set_message(message.into());
        self.bar.enable_steady_tick(TICK);
    }

    /// Prints a finished step above the display.
    pub fn done(&self, message: impl AsRef<str>) {
        self.bar.println(format!("  ✓ {}", message.as_ref()));
    }

    /// Prints a warning above the display.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.bar.println(format!("  ! {}", message.as_ref()));
    }

    /// Switches to a bar of `seconds` (the generation).
    pub fn timed(&self, seconds: u64, message: impl Into<String>) {
        self.bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} s  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.set_length(seconds);
        self.bar.set_position(0);
        self.bar.set_message(message.into());
    }

    /// Sets the bar's position (seconds elapsed) and message.
    pub fn update(&self, position: u64, message: impl Into<String>) {
        self.bar.set_position(position);
        self.bar.set_message(message.into());
    }

    /// Sets only the message.
    pub fn message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// Removes the display.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
