//! generate-logs, run as a user runs it.

use std::time::Duration;

use log_pipeline::parse_line;

use crate::workdir::{Workdir, lines};

/// Replaces the `[...]` time of each line so two runs can be compared apart from the clock.
fn without_time(data: &[u8]) -> Vec<Vec<u8>> {
    lines(data)
        .into_iter()
        .map(|l| {
            let open = l.iter().position(|&b| b == b'[').unwrap();
            let close = l.iter().position(|&b| b == b']').unwrap();
            [&l[..open], &l[close..]].concat()
        })
        .collect()
}

#[test]
fn count_and_seed_give_the_same_lines_apart_from_time() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--count", "100000", "--seed", "7", "--output", "a.log"])
        .assert()
        .success();
    wd.cmd("generate-logs")
        .args(["--count", "100000", "--seed", "7", "--output", "b.log"])
        .assert()
        .success();
    let (a, b) = (wd.read("a.log"), wd.read("b.log"));
    assert_eq!(lines(&a).len(), 100_000);
    assert_eq!(without_time(&a), without_time(&b));
    wd.cmd("generate-logs")
        .args(["--count", "1000", "--seed", "8", "--output", "c.log"])
        .assert()
        .success();
    assert_ne!(
        without_time(&wd.read("c.log")),
        without_time(&a)[..1000].to_vec()
    );
}

#[test]
fn start_fixes_the_timestamps_too() {
    let wd = Workdir::new();
    for out in ["a.log", "b.log"] {
        wd.cmd("generate-logs")
            .args([
                "--count",
                "5000",
                "--seed",
                "1",
                "--start",
                "2024-03-01T12:00:00Z",
                "--output",
                out,
            ])
            .assert()
            .success();
    }
    assert_eq!(wd.read("a.log"), wd.read("b.log"));
    let first = lines(&wd.read("a.log"))[0].to_vec();
    assert!(
        String::from_utf8(first)
            .unwrap()
            .contains("[01/Mar/2024:12:00:")
    );
}

#[test]
fn every_generated_line_parses_back_to_what_was_written() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--count", "100000", "--seed", "7", "--output", "a.log"])
        .assert()
        .success();
    let data = wd.read("a.log");
    for line in lines(&data) {
        let e =
            parse_line(line).unwrap_or_else(|r| panic!("{r}: {}", String::from_utf8_lossy(line)));
        // Re-serialise the parsed fields in Combined Log Format: the round trip is exact.
        let mut again = Vec::new();
        again.extend_from_slice(
            format!("{} - {} [", e.ip, e.user.as_deref().unwrap_or("-")).as_bytes(),
        );
        log_pipeline::generate::write_clf_time(e.timestamp, &mut again);
        again.extend_from_slice(
            format!(
                "] \"{} {} {}\" {} {} \"{}\" \"{}\"",
                e.method.as_deref().unwrap(),
                e.url,
                e.protocol.as_deref().unwrap(),
                e.status,
                e.bytes.map_or("-".to_string(), |b| b.to_string()),
                e.referrer.as_deref().unwrap_or("-"),
                e.user_agent.as_deref().unwrap_or("-"),
            )
            .as_bytes(),
        );
        assert_eq!(again, line);
    }
}

#[test]
fn common_format_has_no_referrer_or_agent() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--count", "1000", "--format", "common", "--output", "c.log"])
        .assert()
        .success();
    for line in lines(&wd.read("c.log")) {
        let e = parse_line(line).unwrap();
        assert!(e.referrer.is_none() && e.user_agent.is_none());
        assert!(!line.ends_with(b"\""));
    }
}

#[test]
fn default_output_is_logs_access_log_created_with_its_directory() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--count", "10"])
        .assert()
        .success();
    assert_eq!(lines(&wd.read("logs/access.log")).len(), 10);
    // Appends, never truncates.
    wd.cmd("generate-logs")
        .args(["--count", "10"])
        .assert()
        .success();
    assert_eq!(lines(&wd.read("logs/access.log")).len(), 20);
}

#[test]
fn ctrl_c_in_the_loop_leaves_only_whole_lines() {
    let wd = Workdir::new();
    for delay_ms in [150u64, 400, 900] {
        let mut child = std::process::Command::new(crate::workdir::bin_path("generate-logs"))
            .args(["--interval", "0.01", "--lines-per-batch", "5000", "--quiet"])
            .current_dir(wd.root())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(
            exit.success(),
            "generate-logs should exit 0 on Ctrl+C, got {exit}"
        );
        let data = wd.read("logs/access.log");
        assert!(!data.is_empty());
        assert_eq!(data.last(), Some(&b'\n'), "the file ends with a whole line");
        assert_eq!(
            lines(&data).len() % 5000,
            0,
            "only whole batches were written"
        );
        assert!(lines(&data).iter().all(|l| parse_line(l).is_ok()));
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let wd = Workdir::new();
    wd.cmd("generate-logs")
        .args(["--interval=-1"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("seconds"));
    wd.cmd("generate-logs")
        .args(["--start", "yesterday"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("RFC 3339"));
    wd.write("blocker", "a file where a directory should be");
    wd.cmd("generate-logs")
        .args(["--count", "1", "--output", "blocker/access.log"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("blocker"));
}
