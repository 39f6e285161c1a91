fn main() {
    for f in std::env::args().skip(1) {
        match xiaotong_solver::fet::read_file(std::path::Path::new(&f), &Default::default()) {
            Ok(m) => println!(
                "OK {} acts={} cons={} rooms={} atoms={}",
                f,
                m.activities.len(),
                m.constraints.len(),
                m.rooms.len(),
                m.atoms.len()
            ),
            Err(e) => println!("ERR {f}: {e}"),
        }
    }
}
