//! The `saectl` binary: parse the command line, run it, turn an error into one line on stderr.

use std::process::ExitCode;

fn main() -> ExitCode {
    saectl::cli::main()
}
