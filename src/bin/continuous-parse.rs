//! continuous-parse: not yet implemented (see the open issues).

use std::process::ExitCode;

fn main() -> ExitCode {
    log_pipeline::cli::main_with("continuous-parse", || anyhow::bail!("not yet implemented"))
}
