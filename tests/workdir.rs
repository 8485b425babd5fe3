//! A temporary working directory per test, and the binaries run inside it.
//!
//! Commands go through assert_cmd, which on failure prints the command line, the exit status,
//! stdout and stderr: what one needs to understand a failure in CI without re-running it.

use std::path::{Path, PathBuf};

pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::Builder::new()
                .prefix("log-pipeline-test")
                .tempdir()
                .expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A command for one of the crate's binaries, run in this directory.
    pub fn cmd(&self, bin: &str) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(bin_path(bin));
        cmd.current_dir(self.dir.path());
        cmd
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, contents).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }
}

pub fn bin_path(bin: &str) -> PathBuf {
    let exe = match bin {
        "generate-logs" => env!("CARGO_BIN_EXE_generate-logs"),
        "parse-to-csv" => env!("CARGO_BIN_EXE_parse-to-csv"),
        "parse-to-db" => env!("CARGO_BIN_EXE_parse-to-db"),
        "continuous-parse" => env!("CARGO_BIN_EXE_continuous-parse"),
        "aggregate-csv" => env!("CARGO_BIN_EXE_aggregate-csv"),
        "aggregate-db" => env!("CARGO_BIN_EXE_aggregate-db"),
        other => panic!("no binary {other}"),
    };
    PathBuf::from(exe)
}

/// The real-world logs shipped beside the project (see ../shared/data/real/SOURCES.md).
pub fn real_logs_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/real");
    assert!(
        dir.join("SOURCES.md").exists(),
        "the real-log test data is expected at {} (the shared/ folder beside the project)",
        dir.display()
    );
    dir
}

/// Splits a file's bytes into lines the way the tools count them: a final line without a
/// newline still counts.
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}
