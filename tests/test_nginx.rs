//! continuous-parse behind a real nginx rotated by a real logrotate, and killed with SIGKILL
//! throughout: every request nginx answered must be stored exactly once.
//!
//! The other follow tests write the log themselves. This one lets the real programs do what
//! they do in production, including what they do late: nginx keeps writing to the renamed log
//! until it has reopened it (here half a second after the rename, like a slow `invoke-rc.d
//! nginx rotate`), `nocreate` leaves no log at all until then, and without `delaycompress`
//! logrotate compresses and deletes the renamed log right after telling nginx to let go of it.
//!
//! Every step waits for something it can observe (requests answered, rows that grew, a file
//! that appeared, a line found in the log), never for a fixed time alone, so a slow machine
//! makes the test slower, not wrong; every wait is bounded. Needs nginx and logrotate
//! (`apt-get install nginx logrotate`): without them the test says SKIPPED, except under CI,
//! which installs them (.ci/run) and so counts their absence as a failure.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::workdir::{Workdir, bin_path, db_rows, find_program, in_ci, lines};

/// Requests per configuration, each `GET /req/N` with its own N.
const REQUESTS: usize = 1500;
/// logrotate runs per configuration, at evenly spread counts of answered requests.
const ROTATIONS: usize = 4;
/// SIGKILLs per configuration at evenly spread counts of answered requests; each rotation adds
/// one more while nginx still writes to the renamed log.
const KILLS: usize = 11;
/// How far the client may run past the next event that is due: enough load to go on while it
/// happens, too little for the client to finish before the events on a machine where the
/// follower is slow.
const SLACK: usize = 60;
/// A pause between requests, so that the load is spread over the rotations and kills. A rate
/// limit, not a timing assumption: every event waits for observed progress.
const PACE: Duration = Duration::from_millis(2);
/// The default of `continuous-parse --rotate-wait`: after a rename a follower may keep reading
/// the renamed log until it has been quiet this long, and only then be done with it.
const ROTATE_WAIT: Duration = Duration::from_secs(5);

/// One logrotate configuration; each also gets `rotate 50`, `missingok` and a late reopen.
struct Scenario {
    name: &'static str,
    directives: &'static [&'static str],
    /// The newest rotated log stays uncompressed until the next rotation.
    delaycompress: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "(a) create, compress, delaycompress",
        directives: &["create", "compress", "delaycompress"],
        delaycompress: true,
    },
    Scenario {
        name: "(b) nocreate, compress, delaycompress",
        directives: &["nocreate", "compress", "delaycompress"],
        delaycompress: true,
    },
    Scenario {
        name: "(c) create, compress without delaycompress",
        directives: &["create", "compress"],
        delaycompress: false,
    },
];

/// One function for the three configurations, so that they run one after the other (the test
/// harness would run separate functions side by side, each with a server and a follower) and
/// one failure reports all three.
#[test]
fn every_answered_request_is_stored_once_through_logrotate_and_kill_9() {
    let Some((nginx, logrotate)) = tools() else {
        return;
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut kills = 0;
    for scenario in &SCENARIOS {
        let outcome = run(scenario, &nginx, &logrotate);
        eprintln!("test_nginx {}", outcome.report);
        kills += outcome.kills;
        if !outcome.failures.is_empty() {
            failures.push(format!(
                "{}:\n  {}{}",
                scenario.name,
                outcome.failures.join("\n  "),
                outcome.follower_log
            ));
        }
    }
    eprintln!(
        "test_nginx: {} configurations, {kills} kills, {:.1} s",
        SCENARIOS.len(),
        started.elapsed().as_secs_f64()
    );
    if kills < 30 {
        failures.push(format!(
            "the follower was killed {kills} times, not 30: it did not make progress"
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// What one configuration showed.
struct Outcome {
    report: String,
    failures: Vec<String>,
    kills: usize,
    /// The end of the followers' stderr, for a failure message.
    follower_log: String,
}

fn run(scenario: &Scenario, nginx_bin: &Path, logrotate_bin: &Path) -> Outcome {
    let started = Instant::now();
    let wd = Workdir::new();
    let mut nginx = Nginx::start(&wd, nginx_bin);
    wd.write("rotate.conf", rotate_conf(&wd, scenario));
    let mut progress = Progress::new(wd.path("logs.db"));
    let mut follower = Some(KillOnDrop::follower(&wd));
    let client = Client::start(nginx.port);
    let mut load = drive(&wd, logrotate_bin, &client, &mut follower, &mut progress);
    let answers = client.finish();
    nginx.reopen_and_flush(&wd);
    settle(&wd, &mut progress, follower, &mut load);
    let logs = Logs::check(&wd, scenario, &load, &answers, &nginx.answered);
    let mut outcome = judge(&wd, &logs, load);
    outcome.report = format!(
        "{}: {}; {:.1} s",
        scenario.name,
        outcome.report,
        started.elapsed().as_secs_f64()
    );
    outcome
}

/// What happened while the load ran.
struct Load {
    rotations: usize,
    kills: usize,
    /// Kills while nginx wrote to the renamed log (besides `kills`).
    window_kills: usize,
    last_rotation_end: Instant,
    failures: Vec<String>,
}

/// Runs the load to its end, rotating the log and killing the follower at observed progress;
/// returns once no logrotate runs any more.
fn drive(
    wd: &Workdir,
    logrotate_bin: &Path,
    client: &Client,
    follower: &mut Option<KillOnDrop>,
    progress: &mut Progress,
) -> Load {
    let log = wd.path("logs/access.log");
    let mut load = Load {
        rotations: 0,
        kills: 0,
        window_kills: 0,
        last_rotation_end: Instant::now(),
        failures: Vec::new(),
    };
    // The row count when the running follower started: it is killed only once it has grown.
    let mut rows_at_start = 0;
    let mut rotation: Option<Rotation> = None;
    let mut exits = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answered = client.answered();
        let rows = progress.rows();
        // A follower stops only when killed: one that exits by itself has failed. It is
        // restarted (a few times) so the run still shows what was lost.
        if let Some(status) = follower.as_mut().and_then(|f| f.0.try_wait().unwrap()) {
            exits += 1;
            load.failures.push(format!(
                "continuous-parse exited by itself ({status}) after {answered} requests"
            ));
            *follower = (exits < 5).then(|| KillOnDrop::follower(wd));
            rows_at_start = progress.rows();
        }
        if rotation.as_mut().is_some_and(|r| r.finished(wd)) {
            rotation = None;
            load.rotations += 1;
            load.last_rotation_end = Instant::now();
        }
        // Once per rotation, kill the follower while nginx writes to the renamed log (before
        // its late reopen): the moment a restarted follower can no longer see that log at the
        // name it followed.
        if let Some(r) = &mut rotation
            && !r.killed
            && follower.is_some()
            && rows > rows_at_start
            && r.renamed_grew(wd)
        {
            r.killed = true;
            load.window_kills += 1;
            rows_at_start = restart(follower, wd, progress);
        }
        // With nocreate the log is back only once nginx has reopened it.
        if rotation.is_none()
            && load.rotations < ROTATIONS
            && answered >= rotation_at(load.rotations)
            && log.exists()
        {
            rotation = Some(Rotation::start(wd, logrotate_bin, &log));
        }
        if load.kills < KILLS
            && answered >= kill_at(load.kills)
            && follower.is_some()
            && rows > rows_at_start
        {
            load.kills += 1;
            rows_at_start = restart(follower, wd, progress);
        }
        let due = [
            (load.kills < KILLS).then(|| kill_at(load.kills)),
            (load.rotations < ROTATIONS).then(|| rotation_at(load.rotations)),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut allowed = due.map_or(REQUESTS, |n| n + SLACK);
        if rotation.is_some() {
            // Load while nginx writes to the renamed log is the point of the late reopen.
            allowed = allowed.max(answered + SLACK);
        }
        client.allow(allowed);
        if answered == REQUESTS && rotation.is_none() && due.is_none() {
            return load;
        }
        if Instant::now() > deadline {
            load.failures.push(format!(
                "the run did not finish in 30 s: {answered} of {REQUESTS} requests answered, \
                 {} rotations, {} kills; the follower has {rows} rows, {rows_at_start} when it \
                 last started",
                load.rotations, load.kills
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    client.allow(REQUESTS);
    if let Some(mut r) = rotation.take() {
        let status = wait_exit(&mut r.child.0, Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "harness: logrotate failed or hung ({status:?}):\n{}",
            tail(&wd.path("logrotate.log"), 20)
        );
        load.rotations += 1;
        load.last_rotation_end = Instant::now();
    }
    load
}

/// Lets the follower take everything, stops it cleanly and runs `--once` after it.
fn settle(wd: &Workdir, progress: &mut Progress, follower: Option<KillOnDrop>, load: &mut Load) {
    if let Some(why) = wait_caught_up(wd, progress, load.last_rotation_end) {
        load.failures.push(why);
    }
    if let Some(mut f) = follower {
        // A clean stop commits what was read and exits 0.
        let stopped = Command::new("kill")
            .args(["-TERM", &f.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let status = wait_exit(&mut f.0, Duration::from_secs(10));
        if !stopped || !status.is_some_and(|s| s.success()) {
            load.failures.push(format!(
                "continuous-parse did not stop cleanly on SIGTERM: {status:?}"
            ));
        }
    }
    let mut once = KillOnDrop(follower_cmd(wd, &["--once"]).spawn().unwrap());
    let status = wait_exit(&mut once.0, Duration::from_secs(30));
    if !status.is_some_and(|s| s.success()) {
        load.failures
            .push(format!("continuous-parse --once failed: {status:?}"));
    }
}

/// What nginx and logrotate left on disk, checked first: the harness must be sound before the
/// follower is judged, so anything wrong here panics with "harness:".
struct Logs {
    names: Vec<String>,
    lines: usize,
    /// How many lines hold each request path.
    count: HashMap<String, usize>,
    /// Which log holds a request's line, to say where lost lines were.
    holder: HashMap<String, String>,
    /// Answered requests in no log (see `check`).
    nowhere: Vec<String>,
    control: usize,
}

impl Logs {
    fn check(
        wd: &Workdir,
        scenario: &Scenario,
        load: &Load,
        answers: &[Result<u16, String>],
        control: &[String],
    ) -> Logs {
        let files = log_files(&wd.path("logs"));
        let names: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
        // (Fewer rotations than planned are a failure reported by `drive`: the run stalled.)
        let expected: Vec<String> = std::iter::once("access.log".to_string())
            .chain((1..=load.rotations).map(|i| {
                let gz = if i == 1 && scenario.delaycompress {
                    ""
                } else {
                    ".gz"
                };
                format!("access.log.{i}{gz}")
            }))
            .collect();
        assert!(
            names == expected,
            "harness: after {} rotations the logs are {names:?}, not {expected:?}",
            load.rotations
        );
        let mut logs = Logs {
            names,
            lines: 0,
            count: HashMap::new(),
            holder: HashMap::new(),
            nowhere: Vec::new(),
            control: control.len(),
        };
        for (name, data) in &files {
            for line in lines(data) {
                logs.lines += 1;
                let url = request_path(line);
                logs.holder.insert(url.clone(), name.clone());
                *logs.count.entry(url).or_default() += 1;
            }
        }

        let refused: Vec<String> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| **a != Ok(200))
            .map(|(n, a)| format!("/req/{n}: {a:?}"))
            .collect();
        assert!(
            answers.len() == REQUESTS && refused.is_empty(),
            "harness: nginx answered {} of {REQUESTS} requests, not all with 200: {}",
            answers.len(),
            sample(&refused)
        );
        let answered: Vec<String> = (0..REQUESTS)
            .map(|n| format!("/req/{n}"))
            .chain(control.iter().cloned())
            .collect();
        let twice: Vec<&String> = answered.iter().filter(|u| logs.times(u) > 1).collect();
        assert!(
            twice.is_empty(),
            "harness: requests logged more than once: {}",
            sample(&twice)
        );
        // Without delaycompress logrotate compresses the renamed log right after sending
        // USR1, and a line nginx writes before it has reopened, once gzip has read that far,
        // ends up in no log: lost by logrotate itself (a follower still holding the log may
        // have it; one restarted meanwhile cannot).
        logs.nowhere = answered
            .into_iter()
            .filter(|u| logs.times(u) == 0)
            .collect();
        assert!(
            logs.nowhere.is_empty() || !scenario.delaycompress,
            "harness: answered requests missing from nginx's logs: {}",
            sample(&logs.nowhere)
        );
        logs
    }

    fn times(&self, url: &str) -> usize {
        self.count.get(url).copied().unwrap_or(0)
    }
}

/// Every request answered 200 stored exactly once, and as many rows as lines.
fn judge(wd: &Workdir, logs: &Logs, load: Load) -> Outcome {
    let mut failures = load.failures;
    let rows = db_rows(&wd.path("logs.db"));
    let mut in_rows: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        *in_rows.entry(row[5].clone()).or_default() += 1;
    }
    let stored = |url: &str| in_rows.get(url).copied().unwrap_or(0);
    let times = |n: usize| stored(&format!("/req/{n}"));
    // Lines in no log are not required (see `Logs::check`), but count when stored.
    let lost: Vec<usize> = (0..REQUESTS)
        .filter(|&n| times(n) == 0 && logs.times(&format!("/req/{n}")) > 0)
        .collect();
    let nowhere_stored = logs.nowhere.iter().filter(|u| stored(u) > 0).count();
    let repeated: Vec<String> = (0..REQUESTS)
        .filter(|&n| times(n) > 1)
        .map(|n| format!("{n} ({} times)", times(n)))
        .collect();
    if rows.len() != logs.lines + nowhere_stored {
        let also = if nowhere_stored == 0 {
            String::new()
        } else {
            format!(" (and {nowhere_stored} stored that are in no log)")
        };
        failures.push(format!(
            "{} rows for {} lines in the logs{also}",
            rows.len(),
            logs.lines,
        ));
    }
    if !lost.is_empty() {
        let mut by_file: Vec<(&String, usize)> = Vec::new();
        for n in &lost {
            let name = &logs.holder[&format!("/req/{n}")];
            match by_file.iter_mut().find(|(f, _)| *f == name) {
                Some((_, count)) => *count += 1,
                None => by_file.push((name, 1)),
            }
        }
        let by_file: Vec<String> = by_file.iter().map(|(f, n)| format!("{n} in {f}")).collect();
        failures.push(format!(
            "{} requests lost ({}): {}",
            lost.len(),
            by_file.join(", "),
            ranges(&lost)
        ));
    }
    if !repeated.is_empty() {
        failures.push(format!(
            "{} requests stored more than once: {}",
            repeated.len(),
            sample(&repeated)
        ));
    }
    let listed = |n: usize, list: String| {
        if n == 0 {
            String::new()
        } else {
            format!(" {list}")
        }
    };
    let nowhere = if logs.nowhere.is_empty() {
        String::new()
    } else {
        format!(
            ", except {} in no log, lost by logrotate itself ({} stored all the same): {}",
            logs.nowhere.len(),
            nowhere_stored,
            sample(&logs.nowhere)
        )
    };
    let report = format!(
        "{REQUESTS} requests answered 200 (and {} control requests); {} lines in {}, each \
         answered request once{nowhere}; {} rotations, {} kills ({} while nginx wrote to the \
         renamed log); {} rows: {} requests lost{}, {} stored more than once{}",
        logs.control,
        logs.lines,
        logs.names.join(" "),
        load.rotations,
        load.kills + load.window_kills,
        load.window_kills,
        rows.len(),
        lost.len(),
        listed(lost.len(), ranges(&lost)),
        repeated.len(),
        listed(repeated.len(), sample(&repeated)),
    );
    Outcome {
        report,
        failures,
        kills: load.kills + load.window_kills,
        follower_log: format!(
            "\n  the followers' stderr ends with:\n{}",
            tail(&wd.path("follower.err"), 15)
        ),
    }
}

/// When the `i`th kill and rotation are due, in answered requests.
fn kill_at(i: usize) -> usize {
    (i + 1) * REQUESTS / (KILLS + 1)
}

fn rotation_at(i: usize) -> usize {
    (i + 1) * REQUESTS / (ROTATIONS + 1)
}

/// Kills the follower with SIGKILL, waits for it, starts another; returns the row count then.
fn restart(follower: &mut Option<KillOnDrop>, wd: &Workdir, progress: &mut Progress) -> usize {
    // Killed and reaped before the next one starts: two followers must not overlap here.
    drop(follower.take());
    *follower = Some(KillOnDrop::follower(wd));
    progress.rows()
}

/// Waits until the follower has taken everything: its checkpoint is at the end of the log, its
/// row count has not moved for a second, and a follower that keeps reading a renamed log until
/// it has been quiet for [`ROTATE_WAIT`] has had that long since the last rotation. Returns why
/// not, after a bounded time.
fn wait_caught_up(wd: &Workdir, progress: &mut Progress, last_rotation: Instant) -> Option<String> {
    let log = wd.path("logs/access.log");
    let key = fs::canonicalize(wd.path("logs"))
        .unwrap()
        .join("access.log")
        .display()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = (progress.rows(), Instant::now());
    loop {
        let rows = progress.rows();
        if rows != last.0 {
            last = (rows, Instant::now());
        }
        let meta = fs::metadata(&log).unwrap();
        let checkpoint = progress.checkpoint(&key);
        let covered = checkpoint == Some((meta.ino(), meta.len()));
        if covered
            && last.1.elapsed() >= Duration::from_secs(1)
            && last_rotation.elapsed() >= ROTATE_WAIT + Duration::from_secs(1)
        {
            return None;
        }
        if Instant::now() > deadline {
            return Some(format!(
                "the follower did not catch up in 30 s: checkpoint (inode, offset) {checkpoint:?}, \
                 the log is ({}, {}); {rows} rows",
                meta.ino(),
                meta.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx and logrotate, or None (after saying SKIPPED) where either is missing.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let ci = in_ci();
    match (find_program("nginx"), find_program("logrotate")) {
        (Some(nginx), Some(logrotate)) => Some((nginx, logrotate)),
        (nginx, _) => {
            let missing = if nginx.is_none() {
                "nginx"
            } else {
                "logrotate"
            };
            assert!(
                !ci,
                "{missing} not found, and CI is set: CI installs nginx and logrotate (.ci/run)"
            );
            eprintln!("SKIPPED: {missing} not found (apt-get install nginx logrotate)");
            None
        }
    }
}

fn rotate_conf(wd: &Workdir, scenario: &Scenario) -> String {
    format!(
        "{} {{\n  rotate 50\n  missingok\n  {}\n  postrotate\n    sleep 0.5; kill -USR1 $(cat {})\n  endscript\n}}\n",
        wd.path("logs/access.log").display(),
        scenario.directives.join("\n  "),
        wd.path("nginx.pid").display()
    )
}

/// A child process killed and reaped when dropped, so none outlives a failed test.
struct KillOnDrop(Child);

impl KillOnDrop {
    fn follower(wd: &Workdir) -> KillOnDrop {
        KillOnDrop(
            follower_cmd(wd, &[])
                .spawn()
                .expect("cannot run continuous-parse"),
        )
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `continuous-parse` on the test's log, its stderr kept in `follower.err`.
fn follower_cmd(wd: &Workdir, extra: &[&str]) -> Command {
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(wd.path("follower.err"))
        .unwrap();
    let mut cmd = Command::new(bin_path("continuous-parse"));
    cmd.arg(wd.path("logs/access.log"))
        .arg("--db")
        .arg(wd.path("logs.db"))
        .args(["--quiet", "--poll-interval", "0.1", "--rotated"])
        .arg(wd.path("logs/access.log.*"))
        .args(extra)
        .current_dir(wd.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    cmd
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private nginx: its own prefix, config, pid file and logs in the test's directory, on a
/// free loopback port. Dropping it stops it through its pid file, as an operator would.
struct Nginx {
    /// Run with `daemon off`, as the test's child: it is reaped, and an early exit (a port
    /// taken meanwhile) is seen at once.
    child: Child,
    pid_file: PathBuf,
    port: u16,
    /// The test's own requests (`/ready/K`, `/flush/K`) nginx answered: lines in the log too.
    answered: Vec<String>,
    asked: usize,
}

impl Nginx {
    fn start(wd: &Workdir, bin: &Path) -> Nginx {
        fs::create_dir_all(wd.path("logs")).unwrap();
        fs::create_dir_all(wd.path("tmp")).unwrap();
        // Started as root, nginx's worker runs as `nobody` and reopens the log itself on USR1:
        // it must be able to reach it.
        fs::set_permissions(wd.root(), fs::Permissions::from_mode(0o755)).unwrap();
        let mut why = String::new();
        for _ in 0..3 {
            let port = free_port();
            wd.write("nginx.conf", nginx_conf(wd.root(), port));
            let child = Command::new(bin)
                .arg("-p")
                .arg(format!("{}/", wd.root().display()))
                .arg("-c")
                .arg(wd.path("nginx.conf"))
                .arg("-e")
                .arg(wd.path("logs/error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(wd.path("nginx.stderr")).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("harness: cannot run {}: {e}", bin.display()));
            let mut nginx = Nginx {
                child,
                pid_file: wd.path("nginx.pid"),
                port,
                answered: Vec::new(),
                asked: 0,
            };
            match nginx.wait_ready() {
                Ok(()) => return nginx,
                // Dropping it stops it; another free port may do.
                Err(e) => {
                    why = format!("{e}: {}", String::from_utf8_lossy(&wd.read("nginx.stderr")))
                }
            }
        }
        panic!("harness: nginx did not start: {why}");
    }

    /// Ready once its pid file names it and it answers a request.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("nginx exited ({status})"));
            }
            if self.pid() == Some(self.child.id()) && self.get("ready") == Ok(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("nginx did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// A request of the test's own, with a unique path under `/kind/`.
    fn get(&mut self, kind: &str) -> Result<u16, String> {
        self.asked += 1;
        let url = format!("/{kind}/{}", self.asked);
        let answer = http_get(self.port, &url);
        if answer == Ok(200) {
            self.answered.push(url);
        }
        answer
    }

    /// Makes nginx reopen its log and waits until it has: a request logged in the file at the
    /// log's path. nginx writes a request's line before it closes the connection, so every
    /// line of an answered request is then in a file the test can read.
    fn reopen_and_flush(&mut self, wd: &Workdir) {
        let pid = self.pid().expect("harness: nginx's pid file is gone");
        assert!(
            Command::new("kill")
                .args(["-USR1", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success()),
            "harness: cannot signal nginx"
        );
        let log = wd.path("logs/access.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.get("flush");
            let url = format!("/flush/{} ", self.asked);
            let data = fs::read(&log).unwrap_or_default();
            if answer == Ok(200) && memchr::memmem::find(&data, url.as_bytes()).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "harness: nginx did not log into {} within 10 s of USR1 (last answer {answer:?}):\n{}",
                log.display(),
                tail(&wd.path("logs/error.log"), 20)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        match self.pid() {
            Some(pid) => {
                let _ = Command::new("kill")
                    .args(["-QUIT", &pid.to_string()])
                    .status();
            }
            None => {
                let _ = self.child.kill();
            }
        }
        if wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn nginx_conf(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/logs/access.log combined;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }}
}}
"
    )
}

/// A port nobody listens on now (it may be taken again before nginx binds it: then nginx exits
/// and [`Nginx::start`] tries another).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("harness: no free loopback port")
        .port()
}

/// One HTTP/1.0 request on its own connection; the answer's status.
fn http_get(port: u16, path: &str) -> Result<u16, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    let timeout = Some(Duration::from_secs(5));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("socket: {e}"))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: log-pipeline-test\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    let head = String::from_utf8_lossy(&response[..response.len().min(40)]).into_owned();
    head.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:?}"))
}

/// The load: `GET /req/N` for N in 0..REQUESTS, one connection each, on a thread of its own.
/// Request N is sent only once the test allows it, so that on any machine the load goes on
/// while the rotations and kills happen instead of ending before them.
struct Client {
    allowed: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Result<u16, String>>>>,
}

impl Client {
    fn start(port: u16) -> Client {
        let allowed = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (allowed, answered, stop) = (allowed.clone(), answered.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let over = || stop.load(Ordering::Relaxed) || Instant::now() > deadline;
                let mut answers = Vec::with_capacity(REQUESTS);
                'requests: for n in 0..REQUESTS {
                    while n >= allowed.load(Ordering::Relaxed) {
                        if over() {
                            break 'requests;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if over() {
                        break;
                    }
                    answers.push(http_get(port, &format!("/req/{n}")));
                    answered.store(n + 1, Ordering::Relaxed);
                    std::thread::sleep(PACE);
                }
                answers
            })
        };
        Client {
            allowed,
            answered,
            stop,
            thread: Some(thread),
        }
    }

    /// Requests done (answered or failed).
    fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    fn allow(&self, requests: usize) {
        self.allowed
            .fetch_max(requests.min(REQUESTS), Ordering::Relaxed);
    }

    /// Lets the client make all its requests and returns each one's answer, in order.
    fn finish(mut self) -> Vec<Result<u16, String>> {
        self.allow(REQUESTS);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A logrotate run in progress.
struct Rotation {
    child: KillOnDrop,
    /// The log's inode before the rotation: the renamed log has it.
    inode: u64,
    renamed_len: Option<u64>,
    killed: bool,
}

impl Rotation {
    fn start(wd: &Workdir, bin: &Path, log: &Path) -> Rotation {
        let inode = fs::metadata(log).unwrap().ino();
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(wd.path("logrotate.log"))
            .unwrap();
        let child = Command::new(bin)
            .arg("-s")
            .arg(wd.path("state"))
            .arg("-f")
            .arg(wd.path("rotate.conf"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("harness: cannot run {}: {e}", bin.display()));
        Rotation {
            child: KillOnDrop(child),
            inode,
            renamed_len: None,
            killed: false,
        }
    }

    /// Has logrotate finished? It must have succeeded.
    fn finished(&mut self, wd: &Workdir) -> bool {
        let Some(status) = self.child.0.try_wait().unwrap() else {
            return false;
        };
        assert!(
            status.success(),
            "harness: logrotate failed ({status}):\n{}",
            tail(&wd.path("logrotate.log"), 20)
        );
        true
    }

    /// Has nginx written to the log since logrotate renamed it (it has not reopened yet)?
    fn renamed_grew(&mut self, wd: &Workdir) -> bool {
        let Ok(meta) = fs::metadata(wd.path("logs/access.log.1")) else {
            return false;
        };
        if meta.ino() != self.inode {
            return false;
        }
        match self.renamed_len {
            None => {
                self.renamed_len = Some(meta.len());
                false
            }
            Some(len) => meta.len() > len,
        }
    }
}

impl Drop for Rotation {
    /// logrotate runs its postrotate script in a shell of its own, in logrotate's process
    /// group: a rotation cut short stops that too.
    fn drop(&mut self) {
        if self.child.0.try_wait().ok().flatten().is_none() {
            let group = format!("-{}", self.child.0.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
    }
}

/// The follower's progress, read from its database.
struct Progress {
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl Progress {
    fn new(path: PathBuf) -> Progress {
        Progress { path, conn: None }
    }

    fn conn(&mut self) -> Option<&rusqlite::Connection> {
        if self.conn.is_none() && self.path.exists() {
            // Never created here: the follower makes the database and its tables.
            use rusqlite::OpenFlags;
            self.conn = rusqlite::Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .ok();
            if let Some(conn) = &self.conn {
                let _ = conn.busy_timeout(Duration::from_secs(5));
            }
        }
        self.conn.as_ref()
    }

    /// Rows committed so far (0 before the follower has made its table).
    fn rows(&mut self) -> usize {
        self.conn()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM logs", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .map_or(0, |n| n as usize)
    }

    /// The (inode, offset) the follower saved for `source`.
    fn checkpoint(&mut self, source: &str) -> Option<(u64, u64)> {
        self.conn()?
            .query_row(
                r#"SELECT inode, "offset" FROM checkpoints WHERE source = ?1"#,
                [source],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .ok()
    }
}

/// The log and its rotated files by rotation number, `.gz` ones decompressed.
fn log_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(u32, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| {
            let rest = name.strip_prefix("access.log")?;
            let number = match rest.strip_prefix('.') {
                None if rest.is_empty() => 0,
                Some(n) => n.trim_end_matches(".gz").parse().ok()?,
                None => return None,
            };
            Some((number, name))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, name)| {
            let raw = fs::read(dir.join(&name)).unwrap();
            let data = if name.ends_with(".gz") {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .unwrap_or_else(|e| panic!("harness: {name}: {e}"));
                out
            } else {
                raw
            };
            (name, data)
        })
        .collect()
}

/// The path of a combined-format line's request (`"GET /req/7 HTTP/1.0"` gives `/req/7`).
fn request_path(line: &[u8]) -> String {
    let line = String::from_utf8_lossy(line);
    line.split('"')
        .nth(1)
        .and_then(|request| request.split(' ').nth(1))
        .unwrap_or("")
        .to_string()
}

/// At most 40 items of a list, for a failure message.
fn sample<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(40).map(|i| i.to_string()).collect();
    let more = if items.len() > 40 { ", ..." } else { "" };
    format!("[{}{more}]", shown.join(", "))
}

/// Request numbers as runs, `3-7 (5), 9`, for a failure message.
fn ranges(numbers: &[usize]) -> String {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => runs.push((n, n)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|&(start, end)| match end - start {
            0 => start.to_string(),
            len => format!("{start}-{end} ({})", len + 1),
        })
        .collect();
    sample(&runs)
}

/// The last `n` lines of a text file ("" when there is none).
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..].join("\n")
}
