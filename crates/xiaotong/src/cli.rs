//! The `xiaotong` command line.

use crate::app::{App, Settings};
use crate::auth::Actor;
use crate::crypto::Keys;
use crate::directory::import::{self, ImportMode};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "xiaotong",
    version,
    about = "校通 Xiaotong: message center, service hall and lesson hours for schools and training centres"
)]
pub struct Cli {
    /// Database: sqlite://FILE?mode=rwc, postgres://… or mysql://…
    #[arg(
        long,
        env = "XIAOTONG_DATABASE_URL",
        default_value = "sqlite://data/xiaotong.db?mode=rwc",
        global = true
    )]
    database_url: String,
    /// Log format.
    #[arg(
        long,
        env = "XIAOTONG_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: HTTP API, web app, job runner and cron (migrates first).
    Serve(ServeArgs),
    /// Start the server on a fresh embedded database filled with demo data, and print the log-ins.
    Demo(DemoArgs),
    /// Apply pending database migrations.
    Migrate,
    /// Bulk-import data.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Tenant administration.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Lesson-hour ledger tools.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Print a new random secret key for XIAOTONG_SECRET_KEY.
    Keygen,
    /// Build a timetable from a FET (.fet) or ITC-2007 (.ctt) file, or score a given solution.
    Solve(xiaotong_solver::cli::SolveArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "XIAOTONG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Base64 key of 32 bytes for field encryption and signing (see `xiaotong keygen`).
    #[arg(long, env = "XIAOTONG_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Time zone for schedules.
    #[arg(long, env = "XIAOTONG_TIMEZONE", default_value = "Asia/Shanghai")]
    timezone: String,
    /// Mark cookies Secure (when served over HTTPS).
    #[arg(long, env = "XIAOTONG_COOKIE_SECURE")]
    cookie_secure: bool,
    /// Do not run background jobs in this process.
    #[arg(long)]
    no_jobs: bool,
    /// Jobs run at once by this process.
    #[arg(long, env = "XIAOTONG_JOB_CONCURRENCY", default_value_t = 16)]
    job_concurrency: usize,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Address to listen on.
    #[arg(long, env = "XIAOTONG_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Folder for the demo database (emptied first).
    #[arg(long, default_value = "data/demo")]
    data_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// Import people from an .xlsx or .csv file (upsert by student/staff number).
    People {
        file: PathBuf,
        /// Tenant code.
        #[arg(long)]
        tenant: String,
        /// Import the valid rows even if other rows have errors.
        #[arg(long)]
        valid_rows_only: bool,
        #[arg(long, env = "XIAOTONG_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify the hash chain of one tenant or all; names the first broken entry.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum LedgerCommand {
    /// Verify the lesson-hour ledger of one tenant or all: the hash chain and
    /// every balance; names the first entry changed, removed or reordered.
    Verify {
        #[arg(long)]
        tenant: Option<String>,
        /// The key the balances are encrypted with.
        #[arg(long, env = "XIAOTONG_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
    },
    /// Re-encrypt every lesson balance written under an older key with the
    /// current XIAOTONG_SECRET_KEY (the newest key id). Safe to run again.
    RotateKey {
        /// The previous secret key (base64).
        #[arg(long, env = "XIAOTONG_OLD_SECRET_KEY", hide_env_values = true)]
        old_secret_key: String,
        #[arg(long, env = "XIAOTONG_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant with its built-in roles and a first institution admin.
    Create {
        code: String,
        name: String,
        #[arg(long, default_value = "admin")]
        admin_username: String,
        /// The admin's first password (must be changed at first log-in).
        #[arg(long, env = "XIAOTONG_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: String,
        #[arg(long, env = "XIAOTONG_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
    },
    /// List tenants.
    List,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XIAOTONG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn keys_from(secret: Option<&str>) -> anyhow::Result<Keys> {
    let secret = secret.ok_or_else(|| {
        anyhow!("XIAOTONG_SECRET_KEY is not set: generate one with `xiaotong keygen` and keep it safe (it encrypts phone and ID numbers)")
    })?;
    Ok(Keys::from_base64(secret)?)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open(
    database_url: &str,
    keys: Keys,
    f: impl FnOnce(&mut Settings),
) -> anyhow::Result<App> {
    let mut settings = Settings {
        database_url: database_url.to_string(),
        ..Settings::default()
    };
    f(&mut settings);
    App::open(settings, keys)
        .await
        .with_context(|| format!("cannot open the database {}", redact(database_url)))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Solve(args) => {
            let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("stopping: keeping the best timetable so far");
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
            let code = tokio::task::spawn_blocking(move || xiaotong_solver::cli::run(args, cancel))
                .await??;
            return Ok(if code == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(code.clamp(1, 255) as u8)
            });
        }
        Command::Keygen => {
            println!("{}", Keys::generate_base64());
        }
        Command::Migrate => {
            let app = open(&cli.database_url, Keys::from_bytes(&[0; 32]), |_| {}).await?;
            let applied = crate::db::migrate(&app.db).await?;
            println!(
                "applied {} migration(s); database is up to date",
                applied.len()
            );
        }
        Command::Serve(a) => {
            let keys = keys_from(a.secret_key.as_deref())?;
            let tz = a
                .timezone
                .parse()
                .map_err(|e| anyhow!("invalid XIAOTONG_TIMEZONE {:?}: {e}", a.timezone))?;
            let app = open(&cli.database_url, keys, |s| {
                s.listen = a.listen.clone();
                s.timezone = tz;
                s.cookie_secure = a.cookie_secure;
                s.job_concurrency = a.job_concurrency.max(1);
            })
            .await?;
            let listener = tokio::net::TcpListener::bind(&a.listen)
                .await
                .with_context(|| format!("cannot listen on {}", a.listen))?;
            let running = crate::server::start(app, listener, !a.no_jobs).await?;
            tracing::info!(addr = %running.addr, "Xiaotong is serving");
            crate::server::cancel_on_signal(running.shutdown.clone());
            running.wait().await;
        }
        Command::Demo(a) => {
            crate::demo::run(&a.listen, &a.data_dir).await?;
        }
        Command::Import(ImportCommand::People {
            file,
            tenant,
            valid_rows_only,
            secret_key,
        }) => {
            let keys = keys_from(secret_key.as_deref())?;
            let app = open(&cli.database_url, keys, |_| {}).await?;
            crate::db::migrate(&app.db).await?;
            let t = crate::auth::store::tenant_by_code(&app.db, &tenant)
                .await?
                .ok_or_else(|| anyhow!("no tenant with code {tenant:?}"))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let table = import::parse_file(&name, &bytes)?;
            let mode = if valid_rows_only {
                ImportMode::ValidRowsOnly
            } else {
                ImportMode::AllOrNothing
            };
            let actor = Actor::system(t.id, "cli import");
            let progress = |done: usize, total: usize| {
                if total > 0 && (done == total || done.is_multiple_of(2000)) {
                    eprintln!("imported {done}/{total} rows");
                }
            };
            let out = import::run(&app, &actor, &table, mode, &progress).await?;
            for e in &out.errors {
                eprintln!("row {} column {}: {}", e.row, e.column, e.message);
            }
            println!(
                "state={} rows={} created={} updated={} unchanged={} skipped={} errors={}",
                out.state,
                out.total_rows,
                out.created,
                out.updated,
                out.unchanged,
                out.skipped,
                out.errors.len()
            );
            if out.state == "rejected" {
                eprintln!("error: the file has {} error(s); nothing was imported (use --valid-rows-only to import the valid rows)", out.errors.len());
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Audit(AuditCommand::Verify { tenant }) => {
            let app = open(&cli.database_url, Keys::from_bytes(&[0; 32]), |_| {}).await?;
            let tenants = crate::directory::store::tenants(&app.db).await?;
            let mut broken = false;
            let mut matched = false;
            for t in tenants
                .iter()
                .filter(|t| tenant.as_ref().is_none_or(|c| *c == t.code))
            {
                matched = true;
                let r = crate::audit::verify(&app.db, t.id).await?;
                if r.ok {
                    println!("tenant {}: ok, {} entries verified", t.code, r.checked);
                } else {
                    broken = true;
                    println!(
                        "tenant {}: BROKEN at entry {}: {}",
                        t.code,
                        r.first_broken_seq.unwrap_or_default(),
                        r.reason.unwrap_or_default()
                    );
                }
            }
            if !matched {
                bail!("no tenant with code {:?}", tenant.unwrap_or_default());
            }
            if broken {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Ledger(LedgerCommand::Verify { tenant, secret_key }) => {
            let keys = keys_from(secret_key.as_deref())?;
            let app = open(&cli.database_url, keys, |_| {}).await?;
            let tenants = crate::directory::store::tenants(&app.db).await?;
            let mut broken = false;
            let mut matched = false;
            for t in tenants
                .iter()
                .filter(|t| tenant.as_ref().is_none_or(|c| *c == t.code))
            {
                matched = true;
                let r = crate::lessons::verify(&app.db, &app.keys, t.id).await?;
                if r.ok {
                    println!(
                        "tenant {}: ok, {} ledger entries verified",
                        t.code, r.checked
                    );
                } else {
                    broken = true;
                    println!(
                        "tenant {}: BROKEN at chain {} entry {}: {}",
                        t.code,
                        r.first_broken_chain.unwrap_or_default(),
                        r.first_broken_seq.unwrap_or_default(),
                        r.reason.unwrap_or_default()
                    );
                }
            }
            if !matched {
                bail!("no tenant with code {:?}", tenant.unwrap_or_default());
            }
            if broken {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Ledger(LedgerCommand::RotateKey {
            old_secret_key,
            secret_key,
        }) => {
            let keys = keys_from(secret_key.as_deref())?;
            let old = Keys::from_base64(&old_secret_key)?;
            let app = open(&cli.database_url, keys, |_| {}).await?;
            let n = crate::lessons::rotate_keys(&app.db, &old, &app.keys).await?;
            println!(
                "re-encrypted {n} balance(s) from key {} to key {}",
                old.key_id(),
                app.keys.key_id()
            );
        }
        Command::Tenant(TenantCommand::List) => {
            let app = open(&cli.database_url, Keys::from_bytes(&[0; 32]), |_| {}).await?;
            for t in crate::directory::store::tenants(&app.db).await? {
                println!("{}\t{}\t{}", t.id, t.code, t.name);
            }
        }
        Command::Tenant(TenantCommand::Create {
            code,
            name,
            admin_username,
            admin_password,
            secret_key,
        }) => {
            let keys = keys_from(secret_key.as_deref())?;
            let app = open(&cli.database_url, keys, |_| {}).await?;
            crate::db::migrate(&app.db).await?;
            let t = crate::directory::service::create_tenant(&app, &code, &name).await?;
            let admin = crate::demo::create_account(
                &app,
                t.id,
                "staff",
                "管理员",
                &admin_username,
                &admin_password,
                &["institution_admin"],
                true,
            )
            .await?;
            println!("created tenant {} (id {}) with admin {admin_username} (id {admin}); the password must be changed at first log-in", t.code, t.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
