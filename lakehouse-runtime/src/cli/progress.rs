//! Live progress while pipelines run: one spinner per pipeline on a terminal, plain lines
//! otherwise (the `tracing` log already says everything).
//!
//! The spinners are redrawn in place, so anything else written to the terminal while they show
//! (log lines, notes, a loop's reports) is written through [`above_progress`]: the spinners are
//! cleared, the text written, the spinners drawn again below it, all under indicatif's lock (a
//! redraw in between would clear the end of the text). Written directly, a line would be
//! overwritten by the next redraw or leave a spinner's copy in the scrollback. A terminal that
//! fails a write ends the spinners: output then goes straight out.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::orchestrator::{Event, Status};

/// The spinners on stderr, when it is a terminal, as indicatif decides it for its own stderr
/// target (not a dumb one, nor one whose `TERM` is unset).
static TERMINAL: LazyLock<MultiProgress> = LazyLock::new(|| {
    let term = console::Term::buffered_stderr();
    MultiProgress::with_draw_target(if term.is_term() && !console::is_dumb() {
        ProgressDrawTarget::term_like_with_hz(Box::new(Unfailing::new(Box::new(term))), 20)
    } else {
        ProgressDrawTarget::hidden()
    })
});

/// Whether spinners are on the terminal: only then is output routed around them (clearing and
/// redrawing them takes a lock; without spinners a write goes straight out).
static SHOWING: AtomicBool = AtomicBool::new(false);

/// Whether the terminal failed a write (hung up, closed): the spinners end.
static FAILED: AtomicBool = AtomicBool::new(false);

/// A terminal whose failed writes are noted in [`FAILED`] rather than returned: indicatif
/// unwraps the results of clearing and redrawing around [`MultiProgress::suspend`], and a
/// panic there would poison its lock for every later log line.
#[derive(Debug)]
struct Unfailing {
    inner: Box<dyn TermLike>,
}

impl Unfailing {
    fn new(inner: Box<dyn TermLike>) -> Unfailing {
        Unfailing { inner }
    }

    fn noted(result: std::io::Result<()>) -> std::io::Result<()> {
        if result.is_err() {
            FAILED.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl TermLike for Unfailing {
    fn width(&self) -> u16 {
        self.inner.width()
    }
    fn height(&self) -> u16 {
        self.inner.height()
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        Self::noted(self.inner.move_cursor_up(n))
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        Self::noted(self.inner.move_cursor_down(n))
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        Self::noted(self.inner.move_cursor_right(n))
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        Self::noted(self.inner.move_cursor_left(n))
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        Self::noted(self.inner.write_line(s))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        Self::noted(self.inner.write_str(s))
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Self::noted(self.inner.clear_line())
    }
    fn flush(&self) -> std::io::Result<()> {
        Self::noted(self.inner.flush())
    }
}

/// Runs `write` (which prints to the terminal) with the spinners cleared, then redraws them,
/// under indicatif's lock.
pub(crate) fn above_progress<R>(write: impl FnOnce() -> R) -> R {
    if !SHOWING.load(Ordering::Acquire) {
        return write();
    }
    let written = TERMINAL.suspend(write);
    if FAILED.load(Ordering::Acquire) {
        // Off the screen if the terminal still takes it, then no more drawing.
        SHOWING.store(false, Ordering::Release);
        let _ = TERMINAL.clear();
        TERMINAL.set_draw_target(ProgressDrawTarget::hidden());
    }
    written
}

/// Writes `text` to stdout, above the spinners when stdout is their terminal too (formatted
/// first: nothing but the write happens under indicatif's lock; a stdout that is a pipe is
/// written without it, and a slow reader then holds up nothing else).
pub(crate) fn write_stdout(text: std::fmt::Arguments<'_>) {
    let text = text.to_string();
    let write = || {
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // A reader that went away wants no more; any other failure (a full disk) loses
            // output, which the exit code must tell.
            if error.kind() != std::io::ErrorKind::BrokenPipe {
                let mut first = STDOUT_FAILED
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                first.get_or_insert_with(|| error.to_string());
            }
        }
    };
    if std::io::stdout().is_terminal() {
        above_progress(write);
    } else {
        write();
    }
}

/// Why writing to stdout failed, the first time it did (not for a reader that went away).
static STDOUT_FAILED: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Why some output to stdout was lost, if any was.
pub(crate) fn stdout_failure() -> Option<String> {
    STDOUT_FAILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

/// Writes `text` to stderr, above the spinners (formatted first).
pub(crate) fn write_stderr(text: std::fmt::Arguments<'_>) {
    let text = text.to_string();
    above_progress(|| {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    });
}

/// The log's writer: stderr, written above the spinners.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        above_progress(|| std::io::stderr().lock().write(buf))
    }

    /// A log event is written whole in one go (the formatter hands it over in one buffer), so
    /// the spinners are cleared and redrawn once per line, not once per partial write.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        above_progress(|| std::io::stderr().lock().write_all(buf))
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
    SHOWING.store(!FAILED.load(Ordering::Acquire), Ordering::Release);
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
                    // Styled before it joins: its own target, stderr, decides the colours.
                    let bar = self
                        .multi
                        .add(ProgressBar::new_spinner().with_style(self.style.clone()));
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
        TERMINAL.set_draw_target(ProgressDrawTarget::term_like(Box::new(Unfailing::new(
            Box::new(screen.clone()),
        ))));
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
        // The line goes to the process's stderr; on the terminal, the spinner is cleared
        // before it and drawn again after it, with nothing drawn in between.
        let mut during = Vec::new();
        above_progress(|| during = screen.ops()[before..].to_vec());
        let after = screen.ops()[before..].to_vec();
        spinners.clear();
        SHOWING.store(false, Ordering::Release);
        assert!(
            during.iter().any(|op| op == "clear")
                && !during.iter().any(|op| op.contains("load_orders")),
            "cleared before the line: {during:?}"
        );
        assert!(
            after[during.len()..]
                .iter()
                .any(|op| op.contains("load_orders")),
            "drawn again after it: {after:?}"
        );
        // The log's writer goes that way.
        let before = screen.ops().len();
        SHOWING.store(true, Ordering::Release);
        let mut spinners = Spinners::new(&TERMINAL);
        spinners.show(Event::Planned {
            run_id: "r".into(),
            pipelines: vec!["load_orders"],
        });
        let drawn = screen.ops().len();
        LogWriter.write_all(b"").expect("written");
        assert!(
            screen.ops()[drawn..].iter().any(|op| op == "clear"),
            "{:?}",
            &screen.ops()[before..]
        );
        spinners.clear();

        // A terminal that fails writes (closed, hung up) ends the spinners; the log goes on.
        TERMINAL.set_draw_target(ProgressDrawTarget::term_like(Box::new(Unfailing::new(
            Box::new(Broken),
        ))));
        let mut spinners = Spinners::new(&TERMINAL);
        spinners.show(Event::Planned {
            run_id: "r".into(),
            pipelines: vec!["load_orders"],
        });
        LogWriter.write_all(b"").expect("written to stderr");
        assert!(!SHOWING.load(Ordering::Acquire), "the spinners are ended");
        spinners.clear();
        FAILED.store(false, Ordering::Release);
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
