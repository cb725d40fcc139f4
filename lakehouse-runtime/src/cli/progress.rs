//! Live progress while pipelines run: one spinner per pipeline on a terminal, plain lines
//! otherwise (the `tracing` log already says everything).
//!
//! The spinners are redrawn in place, so anything else written to the terminal while they show
//! is written above them: log lines and notes on stderr by [`write_stderr`] (the spinners are
//! cleared, the text written, the spinners drawn again below it), reports on a terminal's stdout
//! by [`write_stdout`] (the spinners cleared first). Written directly, a line would be
//! overwritten by the next redraw or leave a spinner's copy in the scrollback. A terminal that
//! fails a write ends the spinners: output then goes straight out.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::orchestrator::{Event, Status};

/// The spinners on stderr, when it is a terminal.
static TERMINAL: LazyLock<MultiProgress> = LazyLock::new(|| {
    MultiProgress::with_draw_target(if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    })
});

/// Whether spinners are on the terminal: only then is output routed around them (clearing and
/// redrawing them takes a lock; without spinners a write goes straight out).
static SHOWING: AtomicBool = AtomicBool::new(false);

/// Writes `text` (whole lines) to stderr, above the spinners when they show. (indicatif's
/// `println` reports a failed terminal write; its `suspend` would panic, poisoning its lock.)
pub(crate) fn write_stderr(text: &[u8]) -> std::io::Result<()> {
    if SHOWING.load(Ordering::Acquire)
        && let Ok(text) = std::str::from_utf8(text)
    {
        let lines = text.strip_suffix('\n').unwrap_or(text);
        if lines.is_empty() || TERMINAL.println(lines).is_ok() {
            return Ok(());
        }
        stop_showing();
    }
    std::io::stderr().lock().write_all(text)
}

/// Writes `text` to stdout, after clearing the spinners when they show on the same screen (the
/// next update draws them again, below it).
pub(crate) fn write_stdout(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    if SHOWING.load(Ordering::Acquire)
        && std::io::stdout().is_terminal()
        && TERMINAL.clear().is_err()
    {
        stop_showing();
    }
    std::io::stdout().lock().write_fmt(text)
}

/// The terminal failed a write: no more spinners.
fn stop_showing() {
    SHOWING.store(false, Ordering::Release);
    TERMINAL.set_draw_target(ProgressDrawTarget::hidden());
}

/// The log's writer: stderr, written above the spinners.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    /// A log event is written whole in one go (the formatter hands it over in one buffer), so
    /// the spinners are cleared and redrawn once per line, not once per partial write.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        write_stderr(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Consumes progress events until the sender is dropped.
pub async fn display(mut events: UnboundedReceiver<Event>) {
    if TERMINAL.is_hidden() {
        while events.recv().await.is_some() {}
        return;
    }
    let mut spinners = Spinners::new(&TERMINAL);
    SHOWING.store(true, Ordering::Release);
    while let Some(event) = events.recv().await {
        spinners.show(event);
    }
    spinners.clear();
    SHOWING.store(false, Ordering::Release);
}

/// One spinner per pipeline of the current run.
struct Spinners<'a> {
    multi: &'a MultiProgress,
    style: ProgressStyle,
    bars: HashMap<&'static str, ProgressBar>,
}

impl<'a> Spinners<'a> {
    fn new(multi: &'a MultiProgress) -> Self {
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        Self {
            multi,
            style,
            bars: HashMap::new(),
        }
    }

    fn show(&mut self, event: Event) {
        match event {
            Event::Planned { pipelines, .. } => {
                self.clear();
                for pipeline in pipelines {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(self.style.clone());
                    bar.set_prefix(pipeline);
                    bar.set_message("pending");
                    self.bars.insert(pipeline, bar);
                }
            }
            Event::Started { pipeline, attempt } => {
                if let Some(bar) = self.bars.get(pipeline) {
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message(if attempt > 1 {
                        format!("running (attempt {attempt})")
                    } else {
                        "running".to_owned()
                    });
                }
            }
            Event::Finished(result) => {
                if let Some(bar) = self.bars.get(result.pipeline) {
                    let mark = match result.status {
                        Status::Succeeded => "✔",
                        Status::Failed => "✘",
                        _ => "–",
                    };
                    bar.finish_with_message(format!(
                        "{mark} {} in {:.2}s",
                        result.status,
                        result.duration.as_secs_f64()
                    ));
                }
            }
        }
    }

    /// Clears every spinner off the terminal and forgets it (a loop's next run plans anew).
    fn clear(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A terminal recording what is drawn on it, and text written beside the spinners.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl Screen {
        fn push(&self, op: String) -> std::io::Result<()> {
            self.0.lock().expect("screen lock").push(op);
            Ok(())
        }
        fn ops(&self) -> Vec<String> {
            self.0.lock().expect("screen lock").clone()
        }
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("up {n}"))
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.push(format!("down {n}"))
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("line {s}"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.push(format!("str {s}"))
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.push("clear".to_owned())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_written_above_the_spinners() {
        let screen = Screen::default();
        TERMINAL.set_draw_target(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let mut spinners = Spinners::new(&TERMINAL);
        SHOWING.store(true, Ordering::Release);
        spinners.show(Event::Planned {
            run_id: "r".into(),
            pipelines: vec!["load_orders"],
        });
        let before = screen.ops().len();
        assert!(
            screen.ops().iter().any(|op| op.contains("load_orders")),
            "the spinner is drawn: {:?}",
            screen.ops()
        );
        LogWriter.write_all(b"INFO a log line\n").expect("written");
        let around = screen.ops()[before..].to_vec();
        spinners.clear();
        SHOWING.store(false, Ordering::Release);
        let cleared = around.iter().position(|op| op == "clear");
        let logged = around.iter().position(|op| op.contains("INFO a log line"));
        let redrawn = around.iter().rposition(|op| op.contains("load_orders"));
        assert!(
            matches!((cleared, logged, redrawn), (Some(c), Some(l), Some(r)) if c < l && l < r),
            "the spinner is cleared, the line written, the spinner drawn again below: {around:?}"
        );

        // A terminal that fails writes (closed, hung up) ends the spinners; the log goes on.
        TERMINAL.set_draw_target(ProgressDrawTarget::term_like(Box::new(Broken)));
        let mut spinners = Spinners::new(&TERMINAL);
        SHOWING.store(true, Ordering::Release);
        spinners.show(Event::Planned {
            run_id: "r".into(),
            pipelines: vec!["load_orders"],
        });
        LogWriter
            .write_all(b"(a log line written while the terminal fails)\n")
            .expect("written to stderr instead");
        assert!(!SHOWING.load(Ordering::Acquire), "the spinners are ended");
        spinners.clear();
    }

    /// A terminal whose every write fails.
    #[derive(Debug)]
    struct Broken;

    impl TermLike for Broken {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn write_line(&self, _: &str) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn write_str(&self, _: &str) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
        fn flush(&self) -> std::io::Result<()> {
            Err(std::io::Error::other("hung up"))
        }
    }
}
