//! Print compiled-problem statistics of a FET or ITC file (debugging aid).
fn main() {
    for f in std::env::args().skip(1) {
        let path = std::path::Path::new(&f);
        let m = if f.ends_with(".ctt") {
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| xiaotong_solver::itc::read_ctt(&t).map_err(|e| e.to_string()))
            {
                Ok(i) => xiaotong_solver::itc::to_model(&i),
                Err(e) => {
                    println!("{f}: {e}");
                    continue;
                }
            }
        } else {
            match xiaotong_solver::fet::read_file(path, &Default::default()) {
                Ok(m) => m,
                Err(e) => {
                    println!("{f}: {e}");
                    continue;
                }
            }
        };
        let p = match xiaotong_solver::problem::Problem::compile(&m, &[]) {
            Ok(p) => p,
            Err(e) => {
                println!("{f}: {e}");
                continue;
            }
        };
        let multi: Vec<usize> = p.units.iter().map(|u| u.len()).filter(|&n| n > 1).collect();
        let small = p.unit_starts.iter().filter(|s| s.len() <= 2).count();
        let need_room = p.acts.iter().filter(|a| a.needs_room).count();
        println!("{f}: acts={} units={} multi-units={:?} units-with-<=2-starts={} rcons={} groups={} room-acts={} blockers={}",
            p.acts.len(), p.units.len(), multi, small, p.rcons.len(), p.groups.len(), need_room, p.blockers.len());
        for b in p.blockers.iter().take(5) {
            println!("  blocker: {}", b.message);
        }
    }
}
