fn main() -> std::process::ExitCode {
    flinksim::cli::main()
}
