"""Side-by-side benchmark of log-pipeline against its peers (run through bench/run).

The parse and report comparisons with the reference Python scripts run on each input (--inputs):
`ours`, generate-logs' log; `seed`, the log of the seed's generate_logs.py; `real`, the real
access logs in ../shared/data/real cycled to the same number of lines. The targets are checked
on each. The other tasks (generate-logs, sqlite3 .import, GoAccess, awk, ingest rate, latency,
900 KB lines) run once, on `ours`. The report memory check runs aggregate-db and aggregate-csv
on a log of 1,000,000 distinct URLs. --baseline DIR adds a before/after comparison with another
build's binaries; --only picks parts.

Every task is run as `ours` and `peer`, alternating, at least three times each; the table shows
medians, the ratio peer/ours (above 1: we are faster) and the peak resident memory of each, and
is written to bench/results.json. Timings on a shared machine are noisy, which is why only
ratios measured in the same run are reported, and why nothing here is a test.

Peak memory is read by GNU time (apt-get install time); without it only times are reported.
The binaries are the ones `cargo build --release` just built, under $CARGO_TARGET_DIR when set.
"""

import argparse
import gzip
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where bench/run's `cargo build` put them: cargo reads a relative CARGO_TARGET_DIR from the
# directory it runs in, which bench/run makes the project root.
BIN = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release"
REF = (ROOT / ".." / "shared" / "reference").resolve()
REAL = (ROOT / ".." / "shared" / "data" / "real").resolve()
FORMATS = (ROOT / ".." / "shared" / "data" / "formats").resolve()
WORK = ROOT / "bench" / "work"

SCHEMA = """CREATE TABLE logs (id INTEGER PRIMARY KEY, ip TEXT NOT NULL, ident TEXT, "user" TEXT,
timestamp TEXT NOT NULL, method TEXT, url TEXT NOT NULL, protocol TEXT, status INTEGER NOT NULL,
bytes INTEGER, referrer TEXT, user_agent TEXT, vhost TEXT, port INTEGER, response_time_us INTEGER,
upstream_time_us INTEGER, forwarded_for TEXT);"""


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run(cmd, cwd, env=None):
    """Runs a shell command; returns (seconds, peak RSS in MiB, or None without GNU time).

    Peak memory is read by GNU time, not by wait4() here: a child forked from this Python
    process starts with its resident pages counted, which would floor every figure at
    Python's own size.
    """
    full_env = dict(os.environ, **(env or {}))
    mem_file = WORK / ".mem"
    argv = ["sh", "-c", cmd]
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", str(mem_file)] + argv
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"`{cmd}` failed ({proc.returncode}): {err}")
    mib = None
    if GNU_TIME:
        mib = int(mem_file.read_text().split()[-1]) / 1024
    return elapsed, mib


def measure(name, ours, other, runs, prepare=None, side="peer"):
    """Alternates ours and the other side `runs` times; `prepare(side)` runs before each command,
    and the disk is synced (untimed) before each.

    The other side is a peer, or the baseline build in a before/after comparison (`side`
    names it in the row: peer_s or baseline_s). The ratio is its median over ours: above 1, we
    are faster.
    """
    times = {"ours": [], side: []}
    mem = {"ours": None, side: None}
    for _ in range(runs):
        for who, cmd in (("ours", ours), (side, other)):
            if cmd is None:
                continue
            if prepare:
                prepare(who)
            # What the last command wrote is still being written back to disk: flushed now,
            # it does not slow the fsyncs of the next one (SQLite's commits wait for the
            # disk), which would then pay for the other side's writes.
            os.sync()
            t, m = cmd()
            times[who].append(t)
            mem[who] = None if m is None else max(mem[who] or 0.0, m)
    mib = lambda m: None if m is None else round(m, 1)
    row = {"task": name, "ours_s": statistics.median(times["ours"]), "ours_mib": mib(mem["ours"])}
    if times[side]:
        row[f"{side}_s"] = statistics.median(times[side])
        row[f"{side}_mib"] = mib(mem[side])
        row["ratio"] = row[f"{side}_s"] / row["ours_s"]
    print(f"  {name}: ours {row['ours_s']:.3f}s" +
          (f", {side} {row[f'{side}_s']:.3f}s, x{row['ratio']:.2f}" if "ratio" in row else ""), file=sys.stderr)
    return row


def remove(d, *globs):
    """Removes d's files matching the globs: a parser's output before a run, so that each run
    writes it afresh (a re-run would find nothing new and add nothing)."""
    for g in globs:
        for p in d.glob(g):
            p.unlink()


def fresh(d, ours_glob, other_glob):
    """A `prepare` for measure(): removes the output of the side about to run, the other's kept."""
    return lambda who: remove(d, ours_glob if who == "ours" else other_glob)


def write_real_log(path, lines):
    """Writes the real logs' records, cycled, until `lines` records.

    Every file of ../shared/data/real is taken in name order (SOURCES.md describes them), the
    .gz one decompressed, and nothing is cleaned: CRLF endings, truncated lines, binary escapes,
    Common and Combined lines, the Elastic log before and after its hand fix, all stay, because
    real logs are like that. Only a file's missing final newline is added, so that cycling does
    not glue two files' lines into one the servers never wrote.
    """
    records = []
    for f in sorted(REAL.iterdir()):
        if f.name == "SOURCES.md" or f.name.startswith("."):
            continue
        data = f.read_bytes()
        if f.suffix == ".gz":
            data = gzip.decompress(data)
        if data and not data.endswith(b"\n"):
            data += b"\n"
        records.extend(r + b"\n" for r in data.split(b"\n")[:-1])
    blob = b"".join(records)
    with open(path, "wb") as out:
        for _ in range(lines // len(records)):
            out.write(blob)
        out.write(b"".join(records[:lines % len(records)]))


def make_input(name, lines, log):
    """Writes the log of input `name` (ours, seed, real) with `lines` lines; returns its description."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        return write_input(name, lines, log)
    finally:
        # The kernel writes a new file back in the background; flushed now, that does not
        # land in the first timed run.
        os.sync()


def write_input(name, lines, log):
    if name == "ours":
        subprocess.run([str(BIN / "generate-logs"), "--count", str(lines), "--seed", "1",
                        "--start", "2024-01-01T00:00:00Z", "--output", str(log), "--quiet"], check=True)
        return "generate-logs --seed 1"
    if name == "seed":
        # The seed generator appends, and creates logs/ in its working directory.
        subprocess.run([sys.executable, str(REF / "generate_logs.py")], cwd=log.parent.parent, check=True,
                       env=dict(os.environ, COUNT=str(lines), SEED="1", OUT=str(log)))
        return "the seed's generate_logs.py, SEED=1"
    write_real_log(log, lines)
    return "the real logs of ../shared/data/real, cycled"


def peer_comparisons(d, runs, py):
    """parse-to-csv, parse-to-db, aggregate-csv and aggregate-db against the reference scripts,
    on d/logs/access.log; leaves each side's stores (ours.csv, ours.db, py.csv, py.db) in d."""
    b = lambda name: str(BIN / name)
    w = str(d)


    results = [
        measure("parse-to-csv", lambda: run(f"{b('parse-to-csv')} logs/access.log --output ours.csv --quiet", w),
                lambda: run(f"{py} {REF}/parse_logs.py logs/access.log py.csv", w),
                runs, prepare=fresh(d, "ours.csv*", "py.csv")),
        measure("parse-to-db", lambda: run(f"{b('parse-to-db')} logs/access.log --db ours.db --quiet", w),
                lambda: run(f"{py} {REF}/parse_to_db.py logs/access.log py.db", w),
                runs, prepare=fresh(d, "ours.db*", "py.db")),
        # Each report reads the store its own parser wrote.
        measure("aggregate-csv (all reports)", lambda: run(f"{b('aggregate-csv')} ours.csv", w),
                lambda: run(f"{py} {REF}/aggregate_csv.py py.csv", w), runs),
        measure("aggregate-db (all reports)", lambda: run(f"{b('aggregate-db')} ours.db", w),
                lambda: run(f"{py} {REF}/aggregate_db.py py.db", w), runs),
    ]
    return results


def peer_targets(results):
    """The issues' targets for one input: (target, met, measured)."""
    by = {r["task"]: r for r in results}
    ratio = lambda task: by[task].get("ratio") or 0
    mib = lambda task: by[task]["ours_mib"]
    return [
        ("parse-to-csv >= 10x parse_logs.py", ratio("parse-to-csv") >= 10, f"x{ratio('parse-to-csv'):.2f}"),
        ("parse-to-db >= 3x parse_to_db.py", ratio("parse-to-db") >= 3, f"x{ratio('parse-to-db'):.2f}"),
        ("aggregate-csv >= 10x aggregate_csv.py", ratio("aggregate-csv (all reports)") >= 10,
         f"x{ratio('aggregate-csv (all reports)'):.2f}"),
        ("aggregate-db >= 3x aggregate_db.py", ratio("aggregate-db (all reports)") >= 3,
         f"x{ratio('aggregate-db (all reports)'):.2f}"),
        ("parse-to-csv peak memory < 64 MiB", (mib("parse-to-csv") or 1e9) < 64, f"{mib('parse-to-csv')} MiB"),
        ("parse-to-db peak memory < 64 MiB", (mib("parse-to-db") or 1e9) < 64, f"{mib('parse-to-db')} MiB"),
    ]


REPORTS = ("summary", "status", "urls", "not-found", "clients", "agents", "referrers", "methods", "traffic")


def ensure(path, cmd, cwd):
    """Runs `cmd` to write `path` unless it is there already (a store an earlier part left)."""
    if not path.exists():
        run(cmd, cwd)


def baseline_db(base, d):
    """Writes d/base.db with the baseline's own writer; returns how it was written.

    Each build reads a store its own writer made, as a user upgrading would: the packed copy
    the reports read may differ between builds. A baseline without parse-to-db (an older
    build, or a partial copy) has continuous-parse --once write it; without either, the
    baseline reads our database, and the table says so.
    """
    if (base / "parse-to-db").exists():
        ensure(d / "base.db", f"{base / 'parse-to-db'} logs/access.log --db base.db --quiet", str(d))
        return "its parse-to-db"
    if (base / "continuous-parse").exists():
        ensure(d / "base.db", f"{base / 'continuous-parse'} logs/access.log --once --quiet --db base.db "
                              f"--offset-file base.offset", str(d))
        return "its continuous-parse --once (no parse-to-db in the baseline)"
    shutil.copyfile(d / "ours.db", d / "base.db")
    return "our parse-to-db (no parse-to-db or continuous-parse in the baseline)"


def baseline_comparisons(d, base, runs, reports=REPORTS):
    """Before/after on d/logs/access.log: the baseline build's binaries against ours, for
    parse-to-csv, parse-to-db, and aggregate-csv and aggregate-db with each report alone and
    all together. Returns (rows, how the baseline's database was written).

    Only flags that every build since the first has are used: positional inputs, --output,
    --db, --quiet, --report.
    """
    ours = lambda name: BIN / name
    w = str(d)


    def timed(cmd):
        return lambda: run(cmd, w)

    rows = []
    if (base / "parse-to-csv").exists():
        rows.append(measure("parse-to-csv", timed(f"{ours('parse-to-csv')} logs/access.log --output ours.csv --quiet"),
                            timed(f"{base / 'parse-to-csv'} logs/access.log --output base.csv --quiet"),
                            runs, prepare=fresh(d, "ours.csv*", "base.csv*"), side="baseline"))
    else:
        rows.append(skipped("parse-to-csv", f"no parse-to-csv in {base}"))
    if (base / "parse-to-db").exists():
        rows.append(measure("parse-to-db", timed(f"{ours('parse-to-db')} logs/access.log --db ours.db --quiet"),
                            timed(f"{base / 'parse-to-db'} logs/access.log --db base.db --quiet"),
                            runs, prepare=fresh(d, "ours.db*", "base.db*"), side="baseline"))
    else:
        rows.append(skipped("parse-to-db", f"no parse-to-db in {base}"))

    ensure(d / "ours.csv", f"{ours('parse-to-csv')} logs/access.log --output ours.csv --quiet", w)
    ensure(d / "ours.db", f"{ours('parse-to-db')} logs/access.log --db ours.db --quiet", w)
    if (base / "parse-to-csv").exists():
        ensure(d / "base.csv", f"{base / 'parse-to-csv'} logs/access.log --output base.csv --quiet", w)
    else:
        shutil.copyfile(d / "ours.csv", d / "base.csv")
    db_by = baseline_db(base, d)

    for tool, store in (("aggregate-csv", "csv"), ("aggregate-db", "db")):
        if not (base / tool).exists():
            rows.append(skipped(tool, f"no {tool} in {base}"))
            continue
        for report in list(reports) + [None]:
            flag = f" --report {report}" if report else ""
            rows.append(measure(f"{tool} --report {report}" if report else f"{tool} (all reports)",
                                timed(f"{ours(tool)} ours.{store}{flag}"), timed(f"{base / tool} base.{store}{flag}"),
                                runs, side="baseline"))
    return rows, db_by


def write_distinct_urls_log(path, n):
    """n lines, each with its own URL (/p/<i>); the rest as in an ordinary log: 1,000 clients,
    a line a second, a few statuses and agents. The URLs are what a report engine that keeps
    every key would hold in memory, whichever report was asked for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = 1704067200  # 2024-01-01T00:00:00Z
    statuses = (200, 200, 200, 200, 200, 200, 301, 304, 404, 500)
    agents = ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "curl/8.4.0",
              "Googlebot/2.1 (+http://www.google.com/bot.html)")
    with open(path, "w") as f:
        for chunk in range(0, n, 10_000):
            f.write("".join(
                f'10.0.{i % 1000 // 250}.{i % 250} - - '
                f'[{time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(start + i))} +0000] '
                f'"GET /p/{i} HTTP/1.1" {statuses[i % 10]} {100 + i % 5000} "-" "{agents[i % 3]}"\n'
                for i in range(chunk, min(n, chunk + 10_000))))


def distinct_urls(n, runs, base):
    """The report engine's memory on n distinct URLs: a log parsed once into a CSV and a
    database, then aggregate-db and aggregate-csv with --report status alone (which needs no
    URL: its memory must not grow with them) and with all reports. With a baseline, its
    binaries run beside ours, each on its own stores. Returns (rows, targets)."""
    d = WORK / "distinct-urls"
    write_distinct_urls_log(d / "logs" / "access.log", n)
    w = str(d)
    rows = []
    for tool, out in (("parse-to-csv", "--output ours.csv"), ("parse-to-db", "--db ours.db")):
        t, m = run(f"{BIN / tool} logs/access.log {out} --quiet", w)
        rows.append({"task": tool, "ours_s": t, "ours_mib": None if m is None else round(m, 1)})
        print(f"  {tool} on {n:,} distinct URLs: {t:.3f}s" + ("" if m is None else f", {m:.1f} MiB"), file=sys.stderr)
    if base:
        if (base / "parse-to-csv").exists():
            run(f"{base / 'parse-to-csv'} logs/access.log --output base.csv --quiet", w)
        else:
            shutil.copyfile(d / "ours.csv", d / "base.csv")
        baseline_db(base, d)
    for tool, store in (("aggregate-db", "db"), ("aggregate-csv", "csv")):
        for report in ("status", None):
            flag = f" --report {report}" if report else ""
            other = None
            if base and (base / tool).exists():
                other = lambda tool=tool, store=store, flag=flag: run(f"{base / tool} base.{store}{flag}", w)
            rows.append(measure(f"{tool} --report {report}" if report else f"{tool} (all reports)",
                                lambda tool=tool, store=store, flag=flag: run(f"{BIN / tool} ours.{store}{flag}", w),
                                other, runs, side="baseline"))
    by = {r["task"]: r for r in rows}
    targets = [(f"{tool} --report status peak memory < 32 MiB on {n:,} distinct URLs",
                (by[f"{tool} --report status"]["ours_mib"] or 1e9) < 32, f"{by[f'{tool} --report status']['ours_mib']} MiB")
               for tool in ("aggregate-db", "aggregate-csv")]
    return rows, targets


def print_baseline(rows):
    """The before/after table. A row is flagged when ours is more than 10% (and 20 ms) slower,
    or holds more than 10% (and 1 MiB) more memory: within that, a shared machine's noise and a
    process's start-up decide."""
    print(f"{'task':<34} {'baseline':>9} {'ours':>9} {'ratio':>7} {'base MiB':>9} {'ours MiB':>9}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['task']:<34} skipped: {r['skipped']}")
            continue
        if "baseline_s" not in r:
            print(f"{r['task']:<34} {'-':>9} {r['ours_s']:>8.3f}s {'-':>7} {'-':>9} {str(r['ours_mib']):>9}")
            continue
        flags = []
        if r["ratio"] < 0.9 and r["ours_s"] - r["baseline_s"] > 0.02:
            flags.append("slower")
        if r["ours_mib"] is not None and r["baseline_mib"] is not None and r["ours_mib"] > 1.1 * r["baseline_mib"] + 1:
            flags.append("more memory")
        print(f"{r['task']:<34} {r['baseline_s']:>8.3f}s {r['ours_s']:>8.3f}s {'x%.2f' % r['ratio']:>7} "
              f"{str(r['baseline_mib']):>9} {str(r['ours_mib']):>9}  {', '.join(flags)}".rstrip())


def print_results(results):
    print(f"{'task':<48} {'ours':>9} {'peer':>9} {'ratio':>7} {'ours MiB':>9} {'peer MiB':>9}")
    for r in results:
        if "skipped" in r:
            print(f"{r['task']:<48} skipped: {r['skipped']}")
        elif "ours_s" in r:
            peer = f"{r['peer_s']:.3f}s" if "peer_s" in r else "-"
            ratio_s = f"x{r['ratio']:.2f}" if "ratio" in r else "-"
            print(f"{r['task']:<48} {r['ours_s']:>8.3f}s {peer:>9} {ratio_s:>7} {str(r['ours_mib']):>9} {str(r.get('peer_mib', '-')):>9}")
        elif "lines_per_second" in r:
            print(f"{r['task']:<48} {r['lines_per_second']:,} lines/s")
        else:
            print(f"{r['task']:<48} median {r['median_ms']} ms, p99 {r['p99_ms']} ms ({r['lines']} lines)")


def print_targets(targets):
    for t, m, v in targets:
        print(f"  [{'met' if m else 'NOT met'}] {t}: {v}")


def skipped(name, why):
    print(f"  {name}: skipped ({why})", file=sys.stderr)
    return {"task": name, "skipped": why}


def latency(lines_per_second, seconds):
    """Append-to-visible latency of continuous-parse at a steady write rate."""
    d = WORK / "latency"
    shutil.rmtree(d, ignore_errors=True)
    (d / "logs").mkdir(parents=True)
    log = d / "logs" / "access.log"
    log.touch()
    follower = subprocess.Popen([str(BIN / "continuous-parse"), "--quiet", "--linger", "0"], cwd=d)
    db = d / "logs.db"
    deadline = time.time() + 10
    while not db.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    sent = []
    snapshots = []
    stop = threading.Event()

    def poll():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        while not stop.is_set():
            n = con.execute("SELECT count(*) FROM logs").fetchone()[0]
            snapshots.append((time.perf_counter(), n))
            time.sleep(0.002)
        con.close()

    poller = threading.Thread(target=poll)
    poller.start()
    total = int(lines_per_second * seconds)
    with open(log, "a") as f:
        start = time.perf_counter()
        for i in range(total):
            target = start + i / lines_per_second
            while time.perf_counter() < target:
                time.sleep(0.0002)
            f.write(f'10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET /lat/{i} HTTP/1.1" 200 1 "-" "bench"\n')
            f.flush()
            sent.append(time.perf_counter())
    time.sleep(1.0)
    stop.set()
    poller.join()
    follower.send_signal(2)
    follower.wait()
    delays = []
    j = 0
    for i, t in enumerate(sent):
        while j < len(snapshots) and snapshots[j][1] < i + 1:
            j += 1
        if j == len(snapshots):
            break
        delays.append(max(0.0, snapshots[j][0] - t))
    delays.sort()
    if not delays:
        return {"task": "continuous-parse latency", "skipped": "no row became visible"}
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] * 1000
    row = {"task": f"continuous-parse latency at {lines_per_second} lines/s", "median_ms": round(p(0.5), 1),
           "p99_ms": round(p(0.99), 1), "lines": len(delays), "of": total}
    print(f"  latency: median {row['median_ms']} ms, p99 {row['p99_ms']} ms", file=sys.stderr)
    return row


INPUTS = ("ours", "seed", "real")


def once(args, lines, runs, py):
    """The tasks that run once, on our generator's log: generate-logs, sqlite3 .import,
    continuous-parse, GoAccess and awk, ingest rate, latency, 900 KB lines.
    Returns (results, targets)."""
    b = lambda name: str(BIN / name)
    d = WORK / "ours"
    log = d / "logs" / "access.log"
    if not log.exists():
        make_input("ours", lines, log)
    w = str(d)
    results = []

    def rm(*names):
        for n in names:
            for p in d.glob(n):
                p.unlink()

    # generate-logs vs generate_logs.py
    results.append(measure(
        "generate-logs", lambda: run(f"{b('generate-logs')} --count {lines} --seed 2 --output gen.log -q", w),
        lambda: run(f"{py} {REF}/generate_logs.py", w, env={"COUNT": str(lines), "SEED": "2", "OUT": "gen_py.log"}),
        runs, prepare=lambda side: rm("gen.log", "gen_py.log")))

    # parse-to-db vs sqlite3 .import of the CSV parse-to-csv wrote, into the same schema
    if shutil.which("sqlite3"):
        (d / "schema.sql").write_text(SCHEMA)
        (d / "import.sql").write_text(".mode csv\n.import --skip 1 ours.csv logs_import\n"
                                         "INSERT INTO logs (ip, ident, \"user\", timestamp, method, url, protocol, status, bytes, referrer, "
                                         "user_agent, vhost, port, response_time_us, upstream_time_us, forwarded_for) "
                                         "SELECT * FROM logs_import;\n")
        if not (d / "ours.csv").exists():
            run(f"{b('parse-to-csv')} logs/access.log --output ours.csv --quiet", w)
        results.append(measure(
            "parse-to-db vs sqlite3 .import", lambda: run(f"{b('parse-to-db')} logs/access.log --db job.db --quiet", w),
            lambda: run("sqlite3 imp.db < schema.sql && sqlite3 imp.db < import.sql", w),
            runs, prepare=lambda side: rm("job.db*", "imp.db")))
    else:
        results.append(skipped("parse-to-db vs sqlite3 .import", "sqlite3 not installed (apt-get install sqlite3)"))

    # continuous-parse --once vs continuous_parse_logs.py ONCE=1 (fixed paths: logs/access.log, logs.db)
    results.append(measure(
        "continuous-parse --once", lambda: run(f"{b('continuous-parse')} --once --quiet", w),
        lambda: run(f"{py} {REF}/continuous_parse_logs.py", w, env={"ONCE": "1"}),
        runs, prepare=lambda side: rm("logs.db*", "logs/.offset")))

    # The whole job: parse and report.
    ours_job = lambda: run(f"{b('parse-to-db')} logs/access.log --db job.db --quiet && {b('aggregate-db')} job.db", w)
    if shutil.which("goaccess"):
        results.append(measure(
            "parse+report vs GoAccess", ours_job,
            lambda: run("goaccess logs/access.log --log-format=COMBINED -o report.json", w),
            runs, prepare=lambda side: rm("job.db*", "report.json")))
    else:
        results.append(skipped("parse+report vs GoAccess", "goaccess not installed (apt-get install goaccess)"))
    if shutil.which("awk") and shutil.which("sort"):
        results.append(measure(
            "parse+report vs awk (status counts + top URLs)", ours_job,
            lambda: run("awk '{c[$9]++} END {for (s in c) print s, c[s]}' logs/access.log && "
                        "awk '{print $7}' logs/access.log | sort | uniq -c | sort -rn | head", w),
            runs, prepare=lambda side: rm("job.db*")))
    else:
        results.append(skipped("parse+report vs awk", "awk or sort not installed"))

    # Ingest rate of continuous-parse on a log that grows as fast as generate-logs writes it.
    d = WORK / "ingest"
    shutil.rmtree(d, ignore_errors=True)
    (d / "logs").mkdir(parents=True)
    follower = subprocess.Popen([b("continuous-parse"), "--quiet", "--linger", "0"], cwd=d)
    start = time.perf_counter()
    subprocess.run([b("generate-logs"), "--count", str(lines), "--quiet"], cwd=d, check=True)
    db = d / "logs.db"
    deadline = time.time() + 300
    while True:
        if time.time() > deadline:
            follower.kill()
            raise RuntimeError("continuous-parse did not catch up within 300 s")
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            n = con.execute("SELECT count(*) FROM logs").fetchone()[0]
            con.close()
        except sqlite3.Error:
            n = 0
        if n >= lines:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    follower.send_signal(2)
    follower.wait()
    rate = lines / elapsed
    results.append({"task": "continuous-parse sustained ingest", "lines_per_second": round(rate)})
    print(f"  sustained ingest: {rate:,.0f} lines/s", file=sys.stderr)

    results.append(latency(1000, 2 if args.quick else 10))

    # Peak memory on lines just under the 1 MiB line limit: the memory goal holds whatever
    # the input, and long lines are where batches, pending inserts and caches could grow.
    d = WORK / "long"
    shutil.rmtree(d, ignore_errors=True)
    (d / "logs").mkdir(parents=True)
    url = "/" + "x" * 900_000
    with open(d / "logs" / "access.log", "w") as f:
        for i in range(40 if args.quick else 300):
            f.write(f'10.0.{i // 250}.{i % 250} - - [01/Jan/2024:00:00:{i % 60:02d} +0000] '
                    f'"GET {url}{i} HTTP/1.1" 200 5 "-" "agent, {i}"\n')
    # Then the report over them: its memory grows with the distinct URLs' text, not more.
    for tool, args_ in (("parse-to-csv", "logs/access.log --output long.csv --quiet"),
                        ("parse-to-db", "logs/access.log --db long.db --quiet"),
                        ("aggregate-csv", "long.csv")):
        t, m = run(f"{b(tool)} {args_}", str(d))
        results.append({"task": f"{tool} on 900 KB lines", "ours_s": t, "ours_mib": None if m is None else round(m, 1)})
        print(f"  {tool} on 900 KB lines: {t:.3f}s" + ("" if m is None else f", {m:.1f} MiB"), file=sys.stderr)

    # The issues' targets, each marked met or not: those of this part, then each input's.
    by = {r["task"]: r for r in results}
    def ratio(task):
        return by.get(task, {}).get("ratio")
    gen_rate = lines / by["generate-logs"]["ours_s"]
    targets = [
        ("generate-logs >= 1M lines/s", gen_rate >= 1e6, f"{gen_rate:,.0f} lines/s"),
        ("parse-to-db faster than sqlite3 .import", (ratio("parse-to-db vs sqlite3 .import") or 0) > 1,
         f"x{ratio('parse-to-db vs sqlite3 .import') or 0:.2f}"),
        ("parse-to-csv peak memory < 64 MiB on 900 KB lines", (by["parse-to-csv on 900 KB lines"]["ours_mib"] or 1e9) < 64,
         f"{by['parse-to-csv on 900 KB lines']['ours_mib']} MiB"),
        ("parse-to-db peak memory < 64 MiB on 900 KB lines", (by["parse-to-db on 900 KB lines"]["ours_mib"] or 1e9) < 64,
         f"{by['parse-to-db on 900 KB lines']['ours_mib']} MiB"),
        ("continuous-parse ingest >= 300k lines/s", rate >= 300_000, f"{rate:,.0f} lines/s"),
    ]
    lat = by.get("continuous-parse latency at 1000 lines/s", {})
    if "median_ms" in lat:
        targets.append(("append-to-visible < 250 ms (p99)", lat["p99_ms"] < 250, f"median {lat['median_ms']} ms, p99 {lat['p99_ms']} ms"))
    return results, targets


def get_page(url, timeout=120):
    """Seconds until the whole page at `url` arrived."""
    import urllib.request
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        r.read()
    return time.perf_counter() - start


def page(n, runs):
    """The report page of a database of n rows (#17: under 1 s server side at 10M): the HTML
    report written by aggregate-db, and the page `aggregate-db --serve` answers (each request
    with a query of its own, `?top=N`, so that each is computed; and, apart, the same query
    asked again past its second, which the server answers from its last report, the database
    unchanged), beside the
    default table report and, as the reference measured in the same run, Python's sqlite3
    running the simplest report (hits per status) over the same rows. Returns (rows, targets)."""
    b = lambda name: str(BIN / name)
    d = WORK / "page"
    shutil.rmtree(d, ignore_errors=True)
    (d / "logs").mkdir(parents=True)
    subprocess.run([b("generate-logs"), "--count", str(n), "--seed", "1", "--start", "2024-01-01T00:00:00Z",
                    "--output", str(d / "logs" / "access.log"), "--quiet"], check=True)
    run(f"{b('parse-to-db')} logs/access.log --db big.db --quiet", str(d))
    (d / "logs" / "access.log").unlink()
    w = str(d)
    reference = f"""{sys.executable} -c 'import sqlite3; sqlite3.connect("big.db").execute("SELECT status, count(*) FROM logs GROUP BY status").fetchall()'"""
    rows = [measure(f"aggregate-db --format html on {n:,} rows",
                    lambda: run(f"{b('aggregate-db')} big.db --format html -o page.html", w),
                    lambda: run(reference, w), runs),
            measure(f"aggregate-db (table) on {n:,} rows", lambda: run(f"{b('aggregate-db')} big.db", w),
                    lambda: run(reference, w), runs)]
    # The served page: the server's own time, from request to the page's last byte.
    # Port 0: the server takes a free port, and says which on its first line.
    server = subprocess.Popen([b("aggregate-db"), "big.db", "--serve", "127.0.0.1:0"], cwd=w,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = server.stderr.readline()
        if "serving http://" not in first:
            raise RuntimeError(f"aggregate-db --serve did not start: {first.strip()}")
        url = first.split("serving ", 1)[1].split()[0]
        served, kept = [], []
        for i in range(runs):
            served.append(get_page(f"{url}?top={11 + i}"))
        # Past the time the server serves a report again without a look (twice what the
        # report cost, a second at least), so that each request finds the database unchanged.
        import urllib.request
        stats = lambda: urllib.request.urlopen(url + "stats", timeout=60).read().decode()
        found = lambda: int(stats().splitlines()[1].rsplit(": ", 1)[1])
        before = found()
        for _ in range(runs):
            time.sleep(max(1.1, 2.2 * max(served)))
            kept.append(get_page(f"{url}?top=11"))
        if found() - before != runs:
            raise RuntimeError(f"the server did not find the database unchanged: {stats()}")
        # The server's peak memory, its counting included.
        status = Path(f"/proc/{server.pid}/status").read_text()
        rss = next((int(l.split()[1]) / 1024 for l in status.splitlines() if l.startswith("VmHWM:")), None)
    finally:
        server.terminate()
        server.wait()
    served_s = statistics.median(served)
    rows.append({"task": f"aggregate-db --serve page on {n:,} rows", "ours_s": served_s,
                 "ours_mib": None if rss is None else round(rss, 1),
                 "runs_s": served})
    kept_s = statistics.median(kept)
    rows.append({"task": f"aggregate-db --serve page on {n:,} rows, database unchanged", "ours_s": kept_s,
                 "ours_mib": rows[-1]["ours_mib"], "runs_s": kept})
    print(f"  served page on {n:,} rows: median {served_s:.3f}s of {', '.join(f'{t:.3f}' for t in served)}"
          + ("" if rss is None else f", server peak {rss:.1f} MiB")
          + f"; asked again, the database unchanged: median {kept_s:.3f}s", file=sys.stderr)
    html = rows[0]
    targets = [
        (f"HTML page of {n:,} rows under 1 s", html["ours_s"] < 1,
         f"{html['ours_s']:.2f} s, {html['ours_mib']} MiB; x{html['ratio']:.2f} of Python's sqlite3 GROUP BY status"),
        (f"served page of {n:,} rows under 1 s", served_s < 1, f"{served_s:.2f} s, {rows[-2]['ours_mib']} MiB"),
    ]
    return rows, targets


# --log-format: the Combined definition string (Apache's, as in apache2.conf), and the real logs
# of ../shared/data/formats with the definition each was written with (see SOURCES.md there).
COMBINED_DEFINITION = r'%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
FORMAT_LOGS = [
    ("dmjacas-logs_other_vhosts_access.log", "vcombined"),
    ("lovecoding1987-sample_logs_other_vhosts_access.log.5", "vcombined"),
    ("kyawzinmyolwin-cohort5website_ingress-nginx-controller.log",
     '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
     '"$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
     '[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time '
     '$upstream_status $req_id'),
    # ui_short with its double space where the data has it (SOURCES.md).
    ("WeirdIdea-OTUS_01_nginx-access-ui.log-20170630",
     '$remote_addr $remote_user  $http_x_real_ip [$time_local] "$request" $status $body_bytes_sent '
     '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$http_X_REQUEST_ID" "$http_X_RB_USER" '
     '$request_time'),
    ("bherila-waikolai_u_ex091107.log", "w3c"),
    ("tstack-lnav_logfile_w3c_big.0", "w3c"),
    ("atombrenner-elb-lambda-analyse_elb.log", "elb"),
    ("iamon3-java_examples_elb.log", "elb"),
    ("crowdsecurity-hub_aws-alb-logs.log", "alb"),
    ("crowdsecurity-hub_aws-cloudfront-logs.log", "cloudfront"),
    ("tstack-lnav_logfile_haproxy.0", "haproxy"),
    # nginx escape=json, pasted as the directive stands in private-isu's nginx.conf.
    ("y4-aoki-private-isu_access.log",
     'log_format json escape=json \'{"time":"$time_iso8601","host":"$remote_addr","port":$remote_port,'
     '"method":"$request_method","uri":"$request_uri","status":"$status","body_bytes":$body_bytes_sent,'
     '"referer":"$http_referer","ua":"$http_user_agent","request_time":"$request_time",'
     '"response_time":"$upstream_response_time"}\';'),
    ("sandip3120-project-Inventory-Tracking-System_caddy_access.log", "caddy"),
    ("tstack-lnav_logfile_caddy_log.1", "caddy"),
    ("petevdp-squad_gps_caddy.log", "caddy-console"),
    ("maborak-monitor-stack_access.log", "traefik"),
]


def log_formats(lines, runs):
    """parse-to-csv with --log-format: the Combined definition string against the built-in
    scanner on our generator's log, and the lines per second of each format of FORMAT_LOGS on
    its real log cycled to `lines` lines. Returns (rows, targets)."""
    d = WORK / "formats"
    make_input("ours", lines, d / "logs" / "access.log")
    b = str(BIN / "parse-to-csv")
    quote = shlex.quote
    rows = [measure("parse-to-csv --log-format <Combined definition>",
                    lambda: run(f"{b} logs/access.log -o def.csv -q --log-format {quote(COMBINED_DEFINITION)}", d),
                    lambda: run(f"{b} logs/access.log -o builtin.csv -q", d),
                    runs, prepare=fresh(d, "def.csv*", "builtin.csv*"), side="builtin")]
    targets = [("--log-format <Combined definition> within 1.3x of the built-in scanner",
                rows[0]["ratio"] >= 1 / 1.3, f"x{1 / rows[0]['ratio']:.2f} of its time")]
    for name, fmt in FORMAT_LOGS:
        records = [r + b"\n" for r in (FORMATS / name).read_bytes().split(b"\n") if r]
        log = d / name
        with open(log, "wb") as out:
            for i in range(lines):
                out.write(records[i % len(records)])
        os.sync()  # as in make_input
        row = measure(f"parse-to-csv --log-format ({name})",
                      lambda: run(f"{b} {quote(name)} -o f.csv -q --log-format {quote(fmt)}", d),
                      None, runs, prepare=fresh(d, "f.csv*", "f.csv*"))
        row["lines_per_s"] = lines / row["ours_s"]
        rows.append(row)
        targets.append((f"{name} at >= 1M lines/s", row["lines_per_s"] >= 1e6, f"{row['lines_per_s']:,.0f} lines/s"))
    return rows, targets


def clickhouse(lines, report_rows, runs):
    """#19: parse-to-db into a local ClickHouse server (its own, started here on free loopback
    ports with its data under bench/work) against parse-to-db into SQLite, and against
    clickhouse-client inserting the same rows from parse-to-csv's CSV (the server's own bulk
    path, with the parsing already done); then aggregate-db's default report from ClickHouse
    against the same from SQLite, on `report_rows` rows. Returns (rows, targets)."""
    import socket
    import urllib.request
    server_bin = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
    client_bin = shutil.which("clickhouse-client")
    if not os.path.exists(server_bin) or not client_bin:
        return [skipped("ClickHouse", "apt-get install clickhouse-server clickhouse-client")], []
    d = WORK / "clickhouse"
    shutil.rmtree(d, ignore_errors=True)
    (d / "logs").mkdir(parents=True)

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    http, tcp, inter = free_port(), free_port(), free_port()
    (d / "config.xml").write_text(f"""<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><interserver_http_port>{inter}</interserver_http_port>
  <listen_host>127.0.0.1</listen_host><path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>
  <users_config>/etc/clickhouse-server/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
</yandex>
""")
    server = subprocess.Popen([server_bin, f"--config-file={d}/config.xml"], cwd=d,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(sql):
        req = urllib.request.Request(f"http://127.0.0.1:{http}/", data=sql.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.read().decode()
    try:
        for _ in range(600):
            try:
                version = query("SELECT version()").strip()
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("clickhouse-server exited at start")
                time.sleep(0.1)
        else:
            raise RuntimeError("clickhouse-server did not answer")
        print(f"  clickhouse-server {version}", file=sys.stderr)
        b = lambda name: str(BIN / name)
        w = str(d)
        url = f"clickhouse://127.0.0.1:{http}/bench"
        make_input("ours", lines, d / "logs" / "access.log")
        run(f"{b('parse-to-csv')} logs/access.log -o rows.csv -q", w)
        columns = next(open(d / "rows.csv")).strip().split(",")

        def prepare(who):
            query("DROP DATABASE IF EXISTS bench")
            remove(d, "ingest.db*")
            if who != "ours":
                query("CREATE DATABASE bench")
                query("CREATE TABLE bench.csv (" + ", ".join(f"`{c}` String" for c in columns)
                      + ") ENGINE = MergeTree() ORDER BY tuple()")
        into_ch = lambda: run(f"{b('parse-to-db')} logs/access.log --db {url} --host bench -q", w)
        rows = [
            measure(f"ingest {lines:,} lines: parse-to-db into ClickHouse vs clickhouse-client (CSV)", into_ch,
                    lambda: run(f"{client_bin} --port {tcp} --query 'INSERT INTO bench.csv FORMAT CSVWithNames' "
                                f"< rows.csv", w), runs, prepare=prepare),
            measure(f"ingest {lines:,} lines: parse-to-db into ClickHouse vs into SQLite", into_ch,
                    lambda: run(f"{b('parse-to-db')} logs/access.log --db ingest.db -q", w), runs,
                    prepare=lambda who: prepare("ours")),
        ]
        for r in rows:
            r["lines_per_s"] = lines / r["ours_s"]
        # The reports: the same rows in both stores.
        query("DROP DATABASE IF EXISTS bench")
        subprocess.run([b("generate-logs"), "--count", str(report_rows), "--seed", "1", "--start",
                        "2024-01-01T00:00:00Z", "--output", str(d / "logs" / "big.log"), "--quiet"], check=True)
        run(f"{b('parse-to-db')} logs/big.log --db big.db -q", w)
        run(f"{b('parse-to-db')} logs/big.log --db {url} --host bench -q", w)
        (d / "logs" / "big.log").unlink()
        for report in ("", "--report status", "--report urls"):
            rows.append(measure(f"aggregate-db {report or '(default)'} on {report_rows:,} rows: ClickHouse vs SQLite",
                                lambda: run(f"{b('aggregate-db')} --db {url} {report}", w),
                                lambda: run(f"{b('aggregate-db')} --db big.db {report}", w), runs))
    finally:
        server.terminate()
        server.wait()
    csv_row = rows[0]
    targets = [(f"ingest into ClickHouse at least as fast as clickhouse-client inserting the CSV",
                csv_row["ratio"] >= 1,
                f"{csv_row['lines_per_s']:,.0f} lines/s, x{csv_row['ratio']:.2f} of clickhouse-client's time")]
    return rows, targets


PARTS = ("peers", "once", "baseline", "urls", "formats", "page", "clickhouse")


def comma_list(allowed):
    def parse(text):
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names or any(n not in allowed for n in names):
            raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(allowed)}")
        return list(dict.fromkeys(names))
    return parse


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100,000 lines, a few minutes")
    ap.add_argument("--lines", type=int, default=None, help="log size (default 1,000,000)")
    ap.add_argument("--inputs", type=comma_list(INPUTS), default=list(INPUTS),
                    help="where the parse and report comparisons run: ours,seed,real (default all three)")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="before/after: also time the binaries in DIR (another build) against ours, for parsing "
                         "and every report, on each input")
    ap.add_argument("--only", type=comma_list(PARTS), default=None,
                    help="run only these parts: peers (the reference scripts, per input), once (the other tasks), "
                         "baseline (needs --baseline), urls, formats (--log-format), page (the HTML report and "
                         "the served page of --report-rows rows), clickhouse (ingest and reports against SQLite "
                         "and clickhouse-client, on a server of its own); e.g. --only baseline")
    ap.add_argument("--distinct-urls", type=int, default=None, metavar="N",
                    help="the report memory check's log: N distinct URLs (default 1,000,000; --quick 100,000)")
    ap.add_argument("--runs", type=int, default=3, help="runs per command (at least 3)")
    ap.add_argument("--report-rows", type=int, default=None,
                    help="the page part's database: this many rows (default 10,000,000; --quick 1,000,000)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"), help="where to write the JSON results")
    args = ap.parse_args()
    parts = args.only or [p for p in PARTS if p != "baseline" or args.baseline]
    if "baseline" in parts and not args.baseline:
        ap.error("--only baseline needs --baseline DIR")
    if args.baseline:
        args.baseline = args.baseline.resolve()
        missing = [n for n in ("parse-to-csv", "parse-to-db", "aggregate-csv", "aggregate-db")
                   if not (args.baseline / n).exists()]
        if len(missing) == 4:
            ap.error(f"--baseline {args.baseline}: none of the binaries is there")
    lines = args.lines or (100_000 if args.quick else 1_000_000)
    runs = max(3, args.runs)
    py = shutil.which("python3") or sys.executable
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    print(f"bench: {lines:,} lines, {runs} runs each, {','.join(parts)} on {','.join(args.inputs)}, in {WORK}",
          file=sys.stderr)
    if not GNU_TIME:
        print("  (peak memory not measured: GNU time is missing; apt-get install time)", file=sys.stderr)
    if args.baseline and missing:
        print(f"  (not in the baseline {args.baseline}: {', '.join(missing)})", file=sys.stderr)

    # Each input's log, then the parts that run on each.
    inputs = {}
    for name in args.inputs if {"peers", "baseline"} & set(parts) else []:
        d = WORK / name
        log = d / "logs" / "access.log"
        what = make_input(name, lines, log)
        print(f"input {name}: {what}, {log.stat().st_size:,} bytes", file=sys.stderr)
        i = inputs[name] = {"log": what, "lines": lines, "log_bytes": log.stat().st_size}
        if "peers" in parts:
            i["results"] = peer_comparisons(d, runs, py)
            i["targets"] = peer_targets(i["results"])
        if "baseline" in parts:
            print(f"  before/after, baseline {args.baseline}", file=sys.stderr)
            i["baseline"], i["baseline_db"] = baseline_comparisons(d, args.baseline, runs)

    results, targets = once(args, lines, runs, py) if "once" in parts else ([], [])

    formats = None
    if "formats" in parts:
        print("--log-format", file=sys.stderr)
        formats = log_formats(lines, runs)

    page_rows = None
    if "page" in parts:
        n = args.report_rows or (1_000_000 if args.quick else 10_000_000)
        print(f"report page of {n:,} rows", file=sys.stderr)
        rows, page_targets = page(n, runs)
        page_rows = {"rows": n, "results": rows, "targets": page_targets}

    ch = None
    if "clickhouse" in parts:
        n = args.report_rows or (1_000_000 if args.quick else 10_000_000)
        print(f"ClickHouse: ingest of {lines:,} lines, reports on {n:,} rows", file=sys.stderr)
        rows, ch_targets = clickhouse(lines, n, runs)
        ch = {"results": rows, "targets": ch_targets}

    urls = None
    if "urls" in parts:
        n = args.distinct_urls or (100_000 if args.quick else 1_000_000)
        print(f"report memory on {n:,} distinct URLs", file=sys.stderr)
        rows, url_targets = distinct_urls(n, runs, args.baseline)
        urls = {"distinct_urls": n, "log_bytes": (WORK / "distinct-urls" / "logs" / "access.log").stat().st_size,
                "results": rows, "targets": url_targets}

    as_json = lambda ts, **extra: [dict(extra, target=t, met=m, measured=v) for t, m, v in ts]
    ours_log = WORK / "ours" / "logs" / "access.log"
    out = {"lines": lines, "log_bytes": ours_log.stat().st_size if ours_log.exists() else None, "runs": runs,
           "parts": parts, "baseline": None if args.baseline is None else str(args.baseline),
           "results": results,
           "inputs": {name: dict(i, targets=as_json(i.get("targets", []))) for name, i in inputs.items()},
           "distinct_urls": urls and dict(urls, targets=as_json(urls["targets"])),
           "formats": formats and {"results": formats[0], "targets": as_json(formats[1])},
           # Every target in one list, each input's marked with its name.
           "targets": as_json(targets) + [t for name, i in inputs.items() for t in as_json(i.get("targets", []), input=name)]
                      + (as_json(urls["targets"], input="distinct-urls") if urls else [])
                      + (as_json(formats[1], input="formats") if formats else [])
                      + (as_json(page_rows["targets"], input="page") if page_rows else [])
                      + (as_json(ch["targets"], input="clickhouse") if ch else []),
           "clickhouse": ch and dict(ch, targets=as_json(ch["targets"])),
           "page": page_rows and dict(page_rows, targets=as_json(page_rows["targets"]))}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")

    for name, i in inputs.items():
        print(f"\n== input {name}: {i['log']}, {i['lines']:,} lines, {i['log_bytes']:,} bytes")
        if "results" in i:
            print_results(i["results"])
        if "baseline" in i:
            print(f"\nbefore/after: baseline {args.baseline} against ours; ratio = baseline / ours "
                  f"(above 1: ours is faster); the baseline's database written by {i['baseline_db']}")
            print_baseline(i["baseline"])
    if results:
        print("\n== once, on input ours")
        print_results(results)
    if urls:
        print(f"\n== report memory on {urls['distinct_urls']:,} distinct URLs ({urls['log_bytes']:,} bytes)"
              + (f"; baseline {args.baseline} beside ours" if args.baseline else ""))
        print_baseline(urls["results"]) if args.baseline else print_results(urls["results"])
    for name, i in inputs.items():
        if "targets" in i:
            print(f"\ntargets on input {name}:")
            print_targets(i["targets"])
    if targets:
        print("\ntargets of the tasks run once:")
        print_targets(targets)
    if urls:
        print("\ntargets of the report memory check:")
        print_targets(urls["targets"])
    if formats:
        print("\n== --log-format (parse-to-csv; lines/s counts every line read, rejects included)")
        for r in formats[0]:
            if "builtin_s" in r:
                print(f"{r['task']:<70} {r['ours_s']:.3f}s, built-in {r['builtin_s']:.3f}s, {r['ours_mib']} MiB")
            else:
                print(f"{r['task']:<70} {r['ours_s']:.3f}s, {r['lines_per_s']:,.0f} lines/s, {r['ours_mib']} MiB")
        print("\ntargets of --log-format:")
        print_targets(formats[1])
    if page_rows:
        print(f"\n== report page of {page_rows['rows']:,} rows (peer: Python's sqlite3, GROUP BY status)")
        print_results([r for r in page_rows["results"] if "ratio" in r])
        for served in [r for r in page_rows["results"] if "ratio" not in r]:
            print(f"{served['task']}: median {served['ours_s']:.3f}s, server peak {served['ours_mib']} MiB")
        print("\ntargets of the report page:")
        print_targets(page_rows["targets"])
    if ch:
        print("\n== ClickHouse (peer: clickhouse-client with the CSV, or SQLite)")
        print_results([r for r in ch["results"] if "ratio" in r])
        for r in ch["results"]:
            if "lines_per_s" in r:
                print(f"{r['task']}: {r['lines_per_s']:,.0f} lines/s")
        print("\ntargets of ClickHouse:")
        print_targets(ch["targets"])
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
