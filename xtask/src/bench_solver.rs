//! `cargo xtask bench fet|itc`: the timetabling benchmarks.
//!
//! * `fet`: runs `fet-cl` and then our solver on every file of
//!   `<bench>/fet/dev-set.txt` (paths relative to FET's examples folder) and
//!   prints a table and `bench=fet files=N fet_solved=N ours_solved=N median_ratio=R`.
//! * `itc`: runs our solver on `<bench>/itc2007/comp*.ctt` and compares the
//!   soft cost with the best-known table of `<bench>/itc2007/README.md`.
//!
//! Options: `--time-limit S` (fet: 60, itc: 300), `--bench-dir DIR`
//! (default `$XIAOTONG_BENCH_DIR` or `../shared/bench`), `--examples DIR`
//! (default `/usr/share/doc/fet-data/examples`), `--files N` (first N files
//! only), `--only SUBSTRING`, `--threads N`, `--seed N`, `--skip-fet`,
//! `--polish S` (fet: after the first feasible timetable, keep lowering the
//! soft cost S seconds more; default 5), `--optimize` (fet: use the whole time
//! limit), `--fet-baseline FILE` (fet: take fet-cl's solved/seconds from a
//! `file, solved, seconds` TSV such as `<bench>/fet/fet-baseline.tsv` instead
//! of running it; fet-cl still checks our timetables), `--check-limit S`
//! (fet: fet-cl's time limit for checking our timetable, default 20).
//! The FET ratio compares our time to the first feasible timetable
//! (reading included) with fet-cl's wall time.
//!
//! A FET file counts as solved by us (`ours_solved`) when our timetable has
//! no hard violation *and* fet-cl, run on the written file (every activity
//! locked), confirms it (`fet_ok` = `yes`, counted by `fet_confirmed`). A
//! file that fet-cl does not solve itself and whose data it refuses by its
//! own pre-check (our `solve` prints that check's `warning:` lines) can have
//! no timetable confirmed that way; for it, fet-cl checks ours with every
//! constraint below 100 % switched off, i.e. that every hard constraint
//! holds (`fet_ok` = `hard`). `ours_hard0` counts the timetables without hard
//! violations by our own evaluation.
//!
//! The other way round, when fet-cl runs (no `--fet-baseline`) and solves a
//! file, our scorer checks fet-cl's own timetable (column `fet_tt_hard`, the
//! hard violations we count in it): anything but 0 means our model reads a
//! constraint more strictly than FET does. The last line counts those files
//! as `model_disagreements`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Opts {
    time_limit: Option<f64>,
    bench_dir: PathBuf,
    examples: PathBuf,
    files: Option<usize>,
    only: Option<String>,
    threads: usize,
    seed: u64,
    skip_fet: bool,
    optimize: bool,
    polish: f64,
    fet_baseline: Option<PathBuf>,
    check_limit: f64,
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

fn parse_opts(args: &[String]) -> Result<Opts> {
    let root = workspace_root();
    let mut o = Opts {
        time_limit: None,
        bench_dir: std::env::var_os("XIAOTONG_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/bench")),
        examples: PathBuf::from("/usr/share/doc/fet-data/examples"),
        files: None,
        only: None,
        threads: 1,
        seed: 1,
        skip_fet: false,
        optimize: false,
        polish: 5.0,
        fet_baseline: None,
        check_limit: 20.0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--time-limit" => o.time_limit = Some(val()?.parse().context("--time-limit")?),
            "--bench-dir" => o.bench_dir = PathBuf::from(val()?),
            "--examples" => o.examples = PathBuf::from(val()?),
            "--files" => o.files = Some(val()?.parse().context("--files")?),
            "--only" => o.only = Some(val()?),
            "--threads" => o.threads = val()?.parse().context("--threads")?,
            "--seed" => o.seed = val()?.parse().context("--seed")?,
            "--skip-fet" => o.skip_fet = true,
            "--optimize" => o.optimize = true,
            "--polish" => o.polish = val()?.parse().context("--polish")?,
            "--fet-baseline" => o.fet_baseline = Some(PathBuf::from(val()?)),
            "--check-limit" => o.check_limit = val()?.parse().context("--check-limit")?,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

/// Build the solver in release mode and return the path of its binary.
fn build_solver() -> Result<PathBuf> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "xiaotong-solver",
            "--example",
            "solve",
            "--message-format=json",
        ])
        .output()
        .context("running cargo build")?;
    if !out.status.success() {
        bail!(
            "building the solver failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        if line.contains("\"reason\":\"compiler-artifact\"") && line.contains("\"name\":\"solve\"")
        {
            if let Some(i) = line.find("\"executable\":\"") {
                let rest = &line[i + 14..];
                if let Some(j) = rest.find('"') {
                    return Ok(PathBuf::from(&rest[..j]));
                }
            }
        }
    }
    bail!("could not find the solve example binary in cargo's output")
}

struct Ours {
    solved: bool,
    seconds: f64,
    first_feasible: Option<f64>,
    hard: i64,
    soft: i64,
    /// Our pre-check (`Model::min_days_warnings`, FET's own) says fet-cl
    /// refuses the file's data whatever the timetable.
    fet_refuses_data: bool,
}

fn run_ours(bin: &Path, file: &Path, extra: &[String], out: &Path) -> Result<Ours> {
    let t = Instant::now();
    let o = Command::new(bin)
        .arg(file)
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let seconds = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&o.stdout);
    let mut r = Ours {
        solved: false,
        seconds,
        first_feasible: None,
        hard: -1,
        soft: -1,
        fet_refuses_data: false,
    };
    for line in text.lines() {
        if line.starts_with("warning: min days between activities") {
            r.fet_refuses_data = true;
        }
        if let Some(v) = line.strip_prefix("feasible seconds=") {
            r.first_feasible = v.trim().parse().ok();
        }
        if line.starts_with("solved=") {
            for kv in line.split_whitespace() {
                match kv.split_once('=') {
                    Some(("solved", v)) => r.solved = v == "1",
                    Some(("hard", v)) => r.hard = v.parse().unwrap_or(-1),
                    Some(("soft", v)) => r.soft = v.parse().unwrap_or(-1),
                    _ => {}
                }
            }
        }
    }
    if r.hard < 0 {
        let err = String::from_utf8_lossy(&o.stderr);
        eprintln!(
            "  {}: {}",
            file.display(),
            err.lines().last().unwrap_or("no result line")
        );
    }
    Ok(r)
}

/// A FET file with every constraint weighted below 100 % made inactive:
/// top-level constraint elements start a line of their own in FET's files
/// and ours, and each has one `Weight_Percentage` and one `Active`.
fn without_soft_constraints(fet: &str) -> String {
    let mut out = String::with_capacity(fet.len());
    let mut block: Vec<&str> = Vec::new();
    let mut end_tag = String::new();
    for line in fet.split_inclusive('\n') {
        let t = line.trim_end();
        if block.is_empty() {
            if t.starts_with("<Constraint") && t.ends_with('>') && !t.ends_with("/>") {
                end_tag = format!("</{}", &t[1..]);
                block.push(line);
            } else {
                out.push_str(line);
            }
            continue;
        }
        block.push(line);
        if t == end_tag {
            let soft = block.iter().any(|l| {
                l.trim()
                    .strip_prefix("<Weight_Percentage>")
                    .and_then(|v| v.strip_suffix("</Weight_Percentage>"))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(|w| w < 100.0)
            });
            for l in block.drain(..) {
                if soft && l.trim() == "<Active>true</Active>" {
                    out.push_str(&l.replace("<Active>true</Active>", "<Active>false</Active>"));
                } else {
                    out.push_str(l);
                }
            }
        }
    }
    block.iter().for_each(|l| out.push_str(l));
    out
}

/// Our hard violations in a timetable `timetable` of `file` (a FET file
/// with every activity locked, such as fet-cl writes), by `solve --check`.
fn score_timetable(bin: &Path, file: &Path, timetable: &Path) -> Result<i64> {
    let o = Command::new(bin)
        .arg(file)
        .arg("--check")
        .arg("--solution")
        .arg(timetable)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&o.stdout);
    text.lines()
        .filter(|l| l.starts_with("solved="))
        .flat_map(str::split_whitespace)
        .find_map(|kv| kv.strip_prefix("hard=")?.parse().ok())
        .with_context(|| {
            format!(
                "scoring fet-cl's timetable of {}: {}",
                file.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )
        })
}

/// The timetable fet-cl wrote into `outdir` for `file`, with the data.
fn fet_timetable(outdir: &Path, file: &Path) -> PathBuf {
    let name = file.file_stem().unwrap_or_default().to_string_lossy();
    outdir
        .join("timetables")
        .join(&*name)
        .join(format!("{name}_data_and_timetable.fet"))
}

/// Run fet-cl; (solved, wall seconds).
fn run_fet(file: &Path, time_limit: f64, outdir: &Path) -> Result<(bool, f64)> {
    let _ = std::fs::remove_dir_all(outdir);
    let t = Instant::now();
    let mut child = Command::new("fet-cl")
        .arg(format!("--inputfile={}", file.display()))
        .arg(format!("--outputdir={}", outdir.display()))
        .arg(format!("--timelimitseconds={}", time_limit.round() as u64))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("running fet-cl (apt-get install fet)")?;
    // fet-cl does not always honour its own time limit: stop it 30 s later.
    let deadline = t + std::time::Duration::from_secs_f64(time_limit + 30.0);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let secs = t.elapsed().as_secs_f64();
    let result = std::fs::read_to_string(outdir.join("logs/result.txt")).unwrap_or_default();
    let solved = status.is_some_and(|s| s.success()) && result.contains("Simulation successful");
    Ok((solved, secs))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn bench_fet(o: &Opts) -> Result<()> {
    let limit = o.time_limit.unwrap_or(60.0);
    let list = std::fs::read_to_string(o.bench_dir.join("fet/dev-set.txt"))
        .with_context(|| format!("reading {}/fet/dev-set.txt", o.bench_dir.display()))?;
    let mut files: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(s) = &o.only {
        files.retain(|f| f.contains(s.as_str()));
    }
    if let Some(n) = o.files {
        files.truncate(n);
    }
    let baseline: Option<std::collections::HashMap<String, (bool, f64)>> = match &o.fet_baseline {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                text.lines()
                    .filter_map(|l| {
                        let c: Vec<&str> = l.split('\t').collect();
                        (c.len() >= 3).then(|| {
                            (
                                c[0].trim().to_string(),
                                (c[1].trim() == "1", c[2].trim().parse().unwrap_or(f64::NAN)),
                            )
                        })
                    })
                    .collect(),
            )
        }
        None => None,
    };
    let bin = build_solver()?;
    let tmp = std::env::temp_dir().join(format!("xiaotong-bench-fet-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut extra = vec![
        "--time-limit".to_string(),
        limit.to_string(),
        "--threads".into(),
        o.threads.to_string(),
        "--seed".into(),
        o.seed.to_string(),
    ];
    if !o.optimize {
        extra.push("--stop-at-feasible".into());
        extra.push("--polish".into());
        extra.push(o.polish.to_string());
    }
    println!(
        "{:<72} {:>6} {:>8} {:>6} {:>8} {:>9} {:>5} {:>8} {:>8} {:>11}",
        "file",
        "fet",
        "fet_s",
        "ours",
        "ours_s",
        "feasible",
        "hard",
        "soft",
        "fet_ok",
        "fet_tt_hard"
    );
    let (mut fet_solved, mut ours_solved, mut ours_hard0, mut fet_confirmed) = (0, 0, 0, 0);
    // fet-cl's own timetables exist only when it runs here.
    let check_fet_timetables = baseline.is_none() && !o.skip_fet;
    let mut disagreements = 0;
    let mut ratios = Vec::new();
    for f in &files {
        let path = o.examples.join(f);
        let (fs, ft) = if o.skip_fet {
            (false, f64::NAN)
        } else if let Some(b) = &baseline {
            b.get(*f).copied().unwrap_or((false, f64::NAN))
        } else {
            run_fet(&path, limit, &tmp.join("fet"))?
        };
        let fet_tt = if fs && check_fet_timetables {
            let hard = score_timetable(&bin, &path, &fet_timetable(&tmp.join("fet"), &path))?;
            disagreements += (hard != 0) as usize;
            hard.to_string()
        } else {
            "-".to_string()
        };
        let out = tmp.join("ours.fet");
        let _ = std::fs::remove_file(&out);
        let ours = run_ours(&bin, &path, &extra, &out)?;
        // FET itself confirms our timetable: every activity is locked in the
        // written file. When fet-cl fails on the original file and our
        // pre-check names the data it refuses, it can confirm no timetable
        // with the file's soft constraints on; it then checks ours with
        // every constraint below 100 % switched off, i.e. that every hard
        // constraint holds ("hard").
        let confirmed = if !ours.solved || o.skip_fet {
            "-"
        } else {
            let hard_only = ours.fet_refuses_data && !fs;
            let checked = if hard_only {
                let text = std::fs::read_to_string(&out)?;
                let hard = tmp.join("ours-hard-only.fet");
                std::fs::write(&hard, without_soft_constraints(&text))?;
                hard
            } else {
                out.clone()
            };
            match run_fet(&checked, o.check_limit, &tmp.join("fet-check")) {
                Ok((true, _)) if hard_only => "hard",
                Ok((true, _)) => "yes",
                Ok((false, _)) => "NO",
                Err(_) => "?",
            }
        };
        let solved = ours.solved && (o.skip_fet || confirmed == "yes" || confirmed == "hard");
        fet_confirmed += (confirmed == "yes") as usize;
        fet_solved += fs as usize;
        ours_hard0 += ours.solved as usize;
        ours_solved += solved as usize;
        if fs && solved {
            let t = ours.first_feasible.unwrap_or(ours.seconds);
            ratios.push(t / ft.max(0.01));
        }
        println!(
            "{:<72} {:>6} {:>8.2} {:>6} {:>8.2} {:>9} {:>5} {:>8} {:>8} {:>11}",
            f,
            fs as u8,
            ft,
            solved as u8,
            ours.seconds,
            ours.first_feasible
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            ours.hard,
            ours.soft,
            confirmed,
            fet_tt
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let r = median(&mut ratios)
        .map(|r| format!("{r:.3}"))
        .unwrap_or_else(|| "NA".into());
    println!(
        "bench=fet files={} fet_solved={fet_solved} ours_solved={ours_solved} median_ratio={r} ours_hard0={ours_hard0} fet_confirmed={fet_confirmed} time_limit={limit}{}",
        files.len(),
        if check_fet_timetables {
            format!(" model_disagreements={disagreements}")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn bench_itc(o: &Opts) -> Result<()> {
    let limit = o.time_limit.unwrap_or(300.0);
    let dir = o.bench_dir.join("itc2007");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
    let best_known = |name: &str| -> Option<i64> {
        readme.lines().find_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() >= 3 && cells[1] == name)
                .then(|| cells[2].parse().ok())
                .flatten()
        })
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "ctt"))
        .collect();
    files.sort();
    if let Some(s) = &o.only {
        files.retain(|f| f.to_string_lossy().contains(s.as_str()));
    }
    if let Some(n) = o.files {
        files.truncate(n);
    }
    let bin = build_solver()?;
    let tmp = std::env::temp_dir().join(format!("xiaotong-bench-itc-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let extra = vec![
        "--time-limit".to_string(),
        limit.to_string(),
        "--threads".into(),
        o.threads.to_string(),
        "--seed".into(),
        o.seed.to_string(),
    ];
    println!(
        "{:<10} {:>9} {:>8} {:>5} {:>7} {:>10} {:>8}",
        "instance", "feasible", "seconds", "hard", "soft", "best_known", "gap_%"
    );
    let (mut feasible, mut gaps) = (0, Vec::new());
    for f in &files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ours = run_ours(&bin, f, &extra, &tmp.join(format!("{name}.sol")))?;
        feasible += ours.solved as usize;
        let bk = best_known(&name);
        let gap = match bk {
            Some(b) if ours.solved && b > 0 => {
                let g = 100.0 * (ours.soft - b) as f64 / b as f64;
                gaps.push(g);
                format!("{g:.1}")
            }
            _ => "-".into(),
        };
        println!(
            "{:<10} {:>9} {:>8.2} {:>5} {:>7} {:>10} {:>8}",
            name,
            ours.first_feasible
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
            ours.seconds,
            ours.hard,
            ours.soft,
            bk.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            gap
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let mean = if gaps.is_empty() {
        "NA".to_string()
    } else {
        format!("{:.1}", gaps.iter().sum::<f64>() / gaps.len() as f64)
    };
    println!(
        "bench=itc files={} feasible={feasible} time_limit={limit} mean_gap_percent={mean}",
        files.len()
    );
    Ok(())
}

/// Entry point for `cargo xtask bench fet|itc [options]`.
pub fn run(kind: &str, args: &[String]) -> Result<()> {
    let o = parse_opts(args)?;
    match kind {
        "fet" => bench_fet(&o),
        "itc" => bench_itc(&o),
        other => bail!("unknown benchmark {other} (expected fet or itc)"),
    }
}

#[cfg(test)]
mod tests {
    use super::without_soft_constraints;

    #[test]
    fn soft_constraints_are_switched_off_and_hard_ones_kept() {
        let fet = "<Time_Constraints_List>\n\
<ConstraintBasicCompulsoryTime>\n\t<Weight_Percentage>100</Weight_Percentage>\n\t<Active>true</Active>\n</ConstraintBasicCompulsoryTime>\n\
<ConstraintMinDaysBetweenActivities>\n\t<Weight_Percentage>95</Weight_Percentage>\n\t<Activity_Id>1</Activity_Id>\n\t<Active>true</Active>\n</ConstraintMinDaysBetweenActivities>\n\
<ConstraintTeacherMaxGapsPerWeek>\n\t<Weight_Percentage>99.5</Weight_Percentage>\n\t<Active>true</Active>\n</ConstraintTeacherMaxGapsPerWeek>\n\
</Time_Constraints_List>\n";
        let out = without_soft_constraints(fet);
        let active: Vec<&str> = out
            .lines()
            .filter(|l| l.contains("<Active>"))
            .map(str::trim)
            .collect();
        assert_eq!(
            active,
            [
                "<Active>true</Active>",
                "<Active>false</Active>",
                "<Active>false</Active>"
            ]
        );
        assert_eq!(out.len(), fet.len() + 2, "only the two flags change");
        assert!(out.contains("<Activity_Id>1</Activity_Id>"));
    }
}
