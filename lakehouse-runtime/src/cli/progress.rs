//! Live progress while pipelines run: one spinner per pipeline on a terminal, plain lines
//! otherwise (the `tracing` log already says everything).

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::orchestrator::{Event, Status};

/// Consumes progress events until the sender is dropped.
pub async fn display(mut events: UnboundedReceiver<Event>) {
    if !std::io::stderr().is_terminal() {
        while events.recv().await.is_some() {}
        return;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<&'static str, ProgressBar> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Planned { pipelines, .. } => {
                for bar in bars.values() {
                    bar.finish_and_clear();
                }
                bars.clear();
                for pipeline in pipelines {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(pipeline);
                    bar.set_message("pending");
                    bars.insert(pipeline, bar);
                }
            }
            Event::Started { pipeline, attempt } => {
                if let Some(bar) = bars.get(pipeline) {
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar.set_message(if attempt > 1 {
                        format!("running (attempt {attempt})")
                    } else {
                        "running".to_owned()
                    });
                }
            }
            Event::Finished(result) => {
                if let Some(bar) = bars.get(result.pipeline) {
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
    for bar in bars.values() {
        bar.finish_and_clear();
    }
}
