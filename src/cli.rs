//! What every binary shares at its edge: the one place an error reaches the user, and the
//! Ctrl+C / SIGTERM flag that long-running tools poll.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs a binary's body and turns its outcome into an exit code.
///
/// Errors are printed once, as `name: error: cause: cause`, and exit 2. A broken pipe (the
/// output piped into `head`) is not an error for a command-line tool: it exits 0.
pub fn main_with(name: &str, body: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match body() {
        Ok(code) => code,
        Err(err) => {
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                    if io.kind() == std::io::ErrorKind::BrokenPipe {
                        return ExitCode::SUCCESS;
                    }
                }
            }
            let _ = writeln!(std::io::stderr().lock(), "{name}: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// A flag set by the first Ctrl+C (SIGINT) or SIGTERM, for tools that stop cleanly between
/// two units of work. A second signal while stopping exits at once with 130, as shells expect.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let handler_flag = Arc::clone(&flag);
    ctrlc::set_handler(move || {
        if handler_flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })?;
    Ok(flag)
}
