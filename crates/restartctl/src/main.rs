//! `restartctl`: the on-call engineer's command line. Everything is in the library.

fn main() -> std::process::ExitCode {
    restartctl::main()
}
