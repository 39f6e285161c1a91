//! `cargo xtask …`: build the web app, run the demo, run every test, run benchmarks.

mod bench_solver;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// npm ci (when needed) and npm run build in web/.
fn build_web(required: bool) -> Result<()> {
    let web = root().join("web");
    if !have("npm") {
        if required {
            bail!("npm is not installed: install Node.js 20+ and npm to build the web app");
        }
        eprintln!("npm not found: the server will say how to build the web app");
        return Ok(());
    }
    if !web.join("node_modules").exists() {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web))?;
    }
    run(Command::new("npm").args(["run", "build"]).current_dir(&web))
}

/// Install what the tests need (`.ci/setup-*.sh`: Chromium, a CJK font,
/// aiosmtpd, npm packages; each idempotent), and point the integration tests
/// at the local PostgreSQL and MariaDB when they are running and the
/// environment does not name others.
fn setup_test_machine(root: &Path) -> Result<()> {
    if std::env::var_os("XIAOTONG_SKIP_SETUP").is_none() {
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(root.join(".ci"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("setup-") && n.ends_with(".sh"))
            })
            .collect();
        scripts.sort();
        for s in scripts {
            run(Command::new("bash").arg(&s).current_dir(root))?;
        }
    }
    let listening = |port: u16| {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            std::time::Duration::from_secs(1),
        )
        .is_ok()
    };
    for (var, port, url) in [
        (
            "XIAOTONG_TEST_POSTGRES_URL",
            5432,
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "XIAOTONG_TEST_MYSQL_URL",
            3306,
            "mysql://root@127.0.0.1:3306/test",
        ),
    ] {
        match std::env::var(var) {
            Ok(v) => eprintln!("{var}={v}"),
            Err(_) if listening(port) => {
                eprintln!("{var} not set; using the server on port {port}: {url}");
                // SAFETY: single-threaded at this point; children inherit it.
                unsafe { std::env::set_var(var, url) };
            }
            Err(_) => eprintln!(
                "{var} not set and nothing listens on port {port}: those tests will not run"
            ),
        }
    }
    Ok(())
}

const USAGE: &str = "usage: cargo xtask <command>

  demo                build the web app and the release binary, then run `xiaotong demo`
  web                 build the web app into web/dist (npm ci && npm run build)
  test                every test: installs what they need (.ci/setup-*.sh), runs the
                      Rust crates on SQLite, PostgreSQL and MariaDB (the local servers,
                      or XIAOTONG_TEST_POSTGRES_URL / XIAOTONG_TEST_MYSQL_URL), then
                      the browser tests against a real server
  bench import        import a 20,000-row XLSX into a fresh SQLite database
  bench jobs          run 20,000 jobs through the queue (SQLite, and PostgreSQL if configured)
  bench people        list/search people with 20,000 people: latency percentiles
  bench fanout        one notice to 20,000 recipients, in-app + e-mail to a real SMTP server
  bench checkin       lesson check-ins: 64 clients, a class of 300, payroll and heatmap
                      over 1,000,000 ledger entries (SQLite, and PostgreSQL if configured)
  bench fet [--time-limit S]   fet-cl vs xiaotong solve on the FET dev set
  bench itc [--time-limit S]   ITC-2007 comp01–07 against the best known costs";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    match args.first().map(String::as_str) {
        Some("web") => build_web(true),
        Some("demo") => {
            build_web(false)?;
            run(cargo()
                .args(["build", "--release", "-p", "xiaotong"])
                .current_dir(&root))?;
            let mut cmd = Command::new(root.join("target/release/xiaotong"));
            cmd.arg("demo").args(&args[1..]).current_dir(&root);
            run(&mut cmd)
        }
        Some("test") => {
            setup_test_machine(&root)?;
            build_web(true)?;
            run(cargo().args(["build", "-p", "xiaotong"]).current_dir(&root))?;
            run(cargo()
                .args(["test", "--workspace", "--no-fail-fast"])
                .current_dir(&root))?;
            run(Command::new("npm")
                .args(["run", "e2e"])
                .env("XIAOTONG_BIN", root.join("target/debug/xiaotong"))
                .current_dir(root.join("web")))
        }
        Some("bench") => match args.get(1).map(String::as_str) {
            Some(kind @ ("fet" | "itc")) => bench_solver::run(kind, &args[2..]),
            Some(kind @ ("import" | "jobs" | "people" | "fanout" | "checkin")) => run(cargo()
                .args(["bench", "-p", "xiaotong", "--bench", kind, "--"])
                .args(&args[2..])
                .current_dir(&root)),
            _ => bail!("{USAGE}"),
        },
        _ => {
            eprintln!("{USAGE}");
            Ok(())
        }
    }
}
