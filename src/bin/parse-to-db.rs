//! parse-to-db: not yet implemented (see the open issues).

use std::process::ExitCode;

fn main() -> ExitCode {
    log_pipeline::cli::main_with("parse-to-db", || anyhow::bail!("not yet implemented"))
}
