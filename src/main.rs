//! The `reckon` binary: the command line lives in the library (`reckon::cli`), shared with
//! `python -m reckon`.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(reckon::cli::main(std::env::args_os()))
}
