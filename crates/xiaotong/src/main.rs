fn main() -> std::process::ExitCode {
    xiaotong::cli::main()
}
