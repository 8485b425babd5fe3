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

/// Value names say what a value is (`<N>`, `<SECS>`, `<PATH>`, `<TIME>`), never the field
/// name clap would derive (`<LINES_PER_BATCH>`, `<COUNT>`), and the same kind of value has the
/// same name in every tool.
#[test]
fn value_names_are_the_same_kinds_in_every_tool() {
    const KINDS: &[&str] = &[
        "N", "SECS", "PATH", "TIME", "BYTES", "GLOB", "REGEX", "CODE", "IP", "LOG",
        // Closed sets, whose values clap lists beside them.
        "FORMAT", "REPORT", "BUCKET", "WHEN",
    ];
    let placeholder = regex::Regex::new(r"<([A-Z_]+)>").unwrap();
    for bin in TOOLS {
        let help = stdout_of(bin, &["--help"]);
        for found in placeholder.captures_iter(&help) {
            assert!(
                KINDS.contains(&&found[1]),
                "{bin} --help names a value <{}>:\n{help}",
                &found[1]
            );
        }
    }
}

/// The stores are named alike by the tools that write and read them: `--db PATH` for SQLite,
/// `--csv PATH` for the CSV (parse-to-csv's `-o/--output`, which it also takes as `--csv`).
/// The positional forms the readers took before stay, for scripts.
#[test]
fn stores_are_named_by_the_same_flags_everywhere() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["-o", "in.log", "--count", "50", "--seed", "1", "--quiet"])
        .assert()
        .success();
    wd.cmd("parse-to-csv")
        .args(["--csv", "a.csv", "in.log", "--final", "--quiet"])
        .assert()
        .success();
    wd.cmd("parse-to-db")
        .args(["--db", "a.db", "in.log", "--final", "--quiet"])
        .assert()
        .success();
    let report = |bin: &str, args: &[&str]| {
        let run = wd
            .cmd(bin)
            .args(args)
            .args(["--format", "json"])
            .assert()
            .success();
        let doc: serde_json::Value = serde_json::from_slice(&run.get_output().stdout).unwrap();
        doc["summary"]["requests"].as_u64().unwrap()
    };
    assert_eq!(report("aggregate-db", &["--db", "a.db"]), 50);
    assert_eq!(report("aggregate-db", &["a.db"]), 50, "the positional form");
    assert_eq!(report("aggregate-csv", &["--csv", "a.csv"]), 50);
    assert_eq!(
        report("aggregate-csv", &["a.csv"]),
        50,
        "the positional form"
    );
    for (bin, args) in [
        ("aggregate-db", ["--db", "a.db", "b.db"]),
        ("aggregate-csv", ["--csv", "a.csv", "b.csv"]),
    ] {
        wd.cmd(bin)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicates::str::contains("cannot be used with"));
    }
    // The positional is for old scripts, not a second spelling to learn.
    for bin in ["aggregate-db", "aggregate-csv"] {
        let help = stdout_of(bin, &["--help"]);
        assert!(help.starts_with("Print reports"), "{help}");
        assert!(
            help.contains(&format!("Usage: {bin} [OPTIONS]\n")),
            "{help}"
        );
    }
}
