//! A real SMTP server process (aiosmtpd, see tests/support/smtp_sink.py)
//! that records every accepted message.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");

/// (recipient, subject) per accepted message, in arrival order.
pub type Received = Arc<Mutex<Vec<(String, String)>>>;

pub struct SmtpSink {
    pub port: u16,
    pub received: Received,
    child: Child,
}

impl SmtpSink {
    /// Starts on a free port, or on `port` when given (to come back after a stop).
    pub async fn start(port: Option<u16>, received: Option<Received>) -> SmtpSink {
        let mut child = Command::new("python3")
            .arg(SCRIPT)
            .args(["--port", &port.unwrap_or(0).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 with aiosmtpd (run .ci/setup-channels.sh)");
        let stdout = child.stdout.take().expect("stdout");
        let received = received.unwrap_or_default();
        let sink = received.clone();
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut port_tx = Some(port_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(p) = line.strip_prefix("PORT ") {
                    if let Some(tx) = port_tx.take() {
                        let _ = tx.send(p.trim().parse::<u16>().unwrap_or(0));
                    }
                } else if let Some(rest) = line.strip_prefix("MSG ") {
                    let (to, subject) = rest.split_once(' ').unwrap_or((rest, ""));
                    sink.lock()
                        .unwrap()
                        .push((to.to_string(), subject.to_string()));
                }
            }
        });
        let port = tokio::time::timeout(Duration::from_secs(20), port_rx)
            .await
            .expect("SMTP sink did not start")
            .expect("SMTP sink exited");
        SmtpSink {
            port,
            received,
            child,
        }
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// Waits until at least `n` messages arrived; returns the count.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> usize {
        let start = Instant::now();
        while self.count() < n && start.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.count()
    }

    pub async fn stop(mut self) -> Received {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        self.received.clone()
    }
}
