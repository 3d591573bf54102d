fn main() -> std::process::ExitCode {
    sermo::cli::main()
}
