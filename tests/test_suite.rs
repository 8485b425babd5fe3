//! The six tools as one suite: each says its own name, and their flags are spelled and
//! described alike, so what is learnt on one works on the others.

use crate::workdir::Workdir;

const TOOLS: [&str; 6] = [
    "generate-logs",
    "parse-to-csv",
    "parse-to-db",
    "continuous-parse",
    "aggregate-csv",
    "aggregate-db",
];

fn stdout_of(bin: &str, args: &[&str]) -> String {
    let wd = Workdir::new();
    let run = wd.cmd(bin).args(args).assert().success();
    String::from_utf8(run.get_output().stdout.clone()).unwrap()
}

#[test]
fn version_names_the_tool_not_the_package() {
    for bin in TOOLS {
        assert_eq!(
            stdout_of(bin, &["--version"]),
            format!("{bin} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
