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
        // Lists of alternatives (`404,5xx`, `10.0.0.0/8,!10.1.2.3`).
        "CODES", "IPS", "METHODS",
        // Closed sets, whose values clap lists beside them.
        "FORMAT", "REPORT", "BUCKET", "WHEN", "FROM", "WHICH", "RULE",
        // A time zone (--tz), an address to serve on (--serve).
        "ZONE", "ADDR",
        // A database: a SQLite path or a clickhouse:// address; a host or cluster's name.
        "DB", "NAME",
        // Privacy: prefix lengths, query parameter names, how long rows are kept.
        "BITS", "NAMES", "SPAN", // File extensions (--static-ext).
        "EXTS",
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

/// Lines longer than `width`, for the message of a failed check.
fn too_wide(text: &str, width: usize) -> Vec<&str> {
    text.lines().filter(|l| l.chars().count() > width).collect()
}

/// The summary and status lines count in words people read ("1 line", "1,500 lines"), and
/// on a terminal (here: COLUMNS=80) fit it, long paths and all; to a file or a pipe each is
/// one whole line, for grep.
#[test]
fn status_lines_read_well_and_fit_the_terminal() {
    let wd = Workdir::new();
    let deep = "a-rather-long-directory-name/".repeat(5);
    std::fs::create_dir_all(wd.path(&deep)).unwrap();
    let log = format!("{deep}access.log");
    let db = format!("{deep}logs.db");
    let stderr_of = |bin: &str, args: &[&str], columns: Option<&str>| {
        let mut cmd = wd.cmd(bin);
        cmd.args(args);
        if let Some(c) = columns {
            cmd.env("COLUMNS", c);
        }
        let run = cmd
            .timeout(std::time::Duration::from_secs(60))
            .assert()
            .success();
        String::from_utf8(run.get_output().stderr.clone()).unwrap()
    };

    let out = stderr_of("generate-logs", &["-o", &log, "--count", "1"], Some("80"));
    assert!(
        out.starts_with("generate-logs: wrote 1 line\n  to …/"),
        "{out}"
    );
    assert!(too_wide(&out, 80).is_empty(), "{out}");
    let args = ["--db", &db, &log, "--final"];
    let out = stderr_of("parse-to-db", &args, Some("80"));
    assert!(
        out.starts_with("parse-to-db: read 1 line, wrote 1, rejected 0 in "),
        "{out}"
    );
    assert!(
        out.contains("(1 line/s)") || out.contains("lines/s)"),
        "{out}"
    );
    let into = out
        .lines()
        .find(|l| l.starts_with("  into "))
        .unwrap_or_default();
    assert!(
        into.starts_with("  into …/a-rather") && into.ends_with("/logs.db"),
        "{out}"
    );
    assert!(too_wide(&out, 80).is_empty(), "{out}");

    stderr_of(
        "generate-logs",
        &["-o", &log, "--count", "1500", "-q"],
        None,
    );
    let out = stderr_of("parse-to-db", &args, None);
    assert_eq!(out.lines().count(), 1, "whole off a terminal: {out}");
    assert!(
        out.starts_with("parse-to-db: read 1,500 lines, wrote 1,500, rejected 0 in "),
        "{out}"
    );
    assert!(out.ends_with(&format!(" into {db}\n")), "{out}");

    let once = ["--db", &db, &log, "--once"];
    let out = stderr_of("continuous-parse", &once, Some("80"));
    assert!(too_wide(&out, 80).is_empty(), "{out}");
    assert!(
        out.starts_with("continuous-parse: following\n  …/"),
        "{out}"
    );
    let offset = regex::Regex::new(r"from offset [0-9]{1,3},[0-9]{3}\n").unwrap();
    assert!(
        offset.is_match(&out),
        "byte offsets with separators too: {out}"
    );
    assert!(
        out.contains("continuous-parse: stopped after 0 lines (0 written, 0 rejected)"),
        "{out}"
    );

    // The status line of a running follower.
    std::fs::write(wd.path("status.txt"), "").unwrap();
    let file = std::fs::File::create(wd.path("status.txt")).unwrap();
    let follower = crate::workdir::Running::spawn(
        std::process::Command::new(crate::workdir::bin_path("continuous-parse"))
            .args([
                "--db",
                &db,
                &log,
                "--status-interval",
                "0",
                "--poll-interval",
                "0.05",
            ])
            .env("COLUMNS", "80")
            .current_dir(wd.root())
            .stderr(file),
    );
    wd.append(&log, std::fs::read(wd.path(&log)).unwrap());
    crate::workdir::wait_until("a status line", || {
        wd.text("status.txt").contains("1,501 lines in total")
    });
    follower.signal_and_wait("-INT");
    let out = wd.text("status.txt");
    assert!(too_wide(&out, 80).is_empty(), "{out}");
    assert!(
        out.contains("continuous-parse: stopped after 1,501 lines (1,501 written, 0 rejected)"),
        "{out}"
    );
    let status = regex::Regex::new(
        r"\ncontinuous-parse: 1,501 lines in total, [0-9,]+ lines/s, 0 bytes behind\n",
    )
    .unwrap();
    assert!(status.is_match(&out), "{out}");
}

/// The progress bar of a large input (64 MiB and more, on a terminal: here a pseudo-terminal
/// of 80 columns from util-linux's script) fits the terminal however long the path: the path
/// is cut to its end and the bar takes the rest.
#[test]
fn the_progress_bar_fits_the_terminal() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: progress bar on a terminal (no `script` to make one)");
        return;
    }
    let wd = Workdir::new();
    let deep = "a-rather-long-directory-name/".repeat(4);
    let log = format!("{deep}access.log");
    wd.cmd("generate-logs")
        .args(["-o", &log, "--count", "400000", "--seed", "1", "-q"])
        .assert()
        .success();
    assert!(
        wd.read(&log).len() >= 64 << 20,
        "big enough for a progress bar"
    );
    let command = format!(
        "stty cols 80; {} --db {deep}logs.db {log} --final",
        crate::workdir::bin_path("parse-to-db").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(wd.root())
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let screen = String::from_utf8_lossy(&out.stdout);
    let escapes = regex::Regex::new("\x1b\\[[0-9;?]*[A-Za-z]").unwrap();
    let frames: Vec<String> = (screen.split(['\r', '\n']))
        .map(|f| escapes.replace_all(f, "").into_owned())
        .collect();
    assert!(
        frames.iter().any(|f| f.starts_with("…/access.log [")),
        "a progress bar with the end of the path:\n{screen}"
    );
    let wide: Vec<&String> = frames.iter().filter(|f| f.chars().count() > 80).collect();
    assert!(wide.is_empty(), "{wide:#?}");
}
