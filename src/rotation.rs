//! Rotation: the files a log becomes, and how each is found again.
//!
//! Servers and logrotate do not rotate the way a tailer would like. With `create` (Debian's
//! default) the log is renamed and a new one created, but the server goes on writing to the
//! renamed file until it reopens its log, seconds later; with `nocreate` the path is missing
//! meanwhile; `compress` turns the renamed file into `.1.gz` at once, `delaycompress` at the
//! next rotation; a cron run or a stopped follower may sleep through several rotations.
//!
//! So a log is tracked as a set of records, all stored with the checkpoints under keys that
//! start with the log's key ([`crate::ingest::source_key`]):
//! - the log's key itself: the file now at the path (the *current* file);
//! - `KEY#rotated:SEQ:DEV:INODE`: a file the log was rotated to, still read from its offset
//!   until it has been quiet for the rotate wait (the server may still write to it), in the
//!   order of `SEQ`;
//! - `KEY#done:DEV:INODE:FINGERPRINT`: a rotated or copied file read to its end, remembered
//!   so that the same lines given again (`access.log.1.gz` as an input) are not taken twice.
//!
//! A record's file is found again by identity (device and inode) and content (the
//! fingerprint of its first bytes and the hash of the bytes before its offset, see
//! [`crate::checkpoint`]) among the log's *siblings*: `access.log.1`, `access.log.2.gz`,
//! dateext names (`access.log-20261201`), and the matches of a `--rotated` glob. A `.gz` is
//! recognised by the fingerprint of its decompressed head.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::checkpoint::{self, Checkpoint, WINDOW};

/// What a record of a log is for, from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Current,
    /// Rotated away and still read; `seq` orders the rotated files of a log, oldest first.
    Rotated {
        seq: u64,
    },
    Done,
}

/// The role of `record_key` among the records of the log `key`, or `None` if it is not one.
pub fn role(key: &str, record_key: &str) -> Option<Role> {
    let rest = record_key.strip_prefix(key)?;
    if rest.is_empty() {
        return Some(Role::Current);
    }
    if let Some(tail) = rest.strip_prefix("#rotated:") {
        let seq = tail.split(':').next()?.parse().ok()?;
        return Some(Role::Rotated { seq });
    }
    rest.starts_with("#done:").then_some(Role::Done)
}

/// The log a rotated or done record belongs to; `None` for any other key.
pub fn log_of(record_key: &str) -> Option<&str> {
    ["#rotated:", "#done:"]
        .iter()
        .filter_map(|marker| record_key.rfind(marker))
        .max()
        .map(|at| &record_key[..at])
}

/// The key of a rotated record of `key`.
pub fn rotated_key(key: &str, seq: u64, cp: &Checkpoint) -> String {
    format!("{key}#rotated:{seq:06}:{}:{}", cp.dev, cp.inode)
}

/// The key of a done record of `key`.
pub fn done_key(key: &str, cp: &Checkpoint) -> String {
    format!("{key}#done:{}:{}:{:016x}", cp.dev, cp.inode, cp.fingerprint)
}

/// The records of one log, out of all the saved checkpoints.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub current: Option<Checkpoint>,
    /// Oldest first.
    pub rotated: Vec<(String, Checkpoint)>,
    pub done: Vec<(String, Checkpoint)>,
}

impl Records {
    pub fn of(key: &str, all: &[(String, Checkpoint)]) -> Records {
        let mut records = Records::default();
        let mut rotated = Vec::new();
        for (record_key, cp) in all {
            match role(key, record_key) {
                Some(Role::Current) => records.current = Some(*cp),
                Some(Role::Rotated { seq }) => rotated.push((seq, record_key.clone(), *cp)),
                Some(Role::Done) => records.done.push((record_key.clone(), *cp)),
                None => {}
            }
        }
        rotated.sort_by_key(|r| r.0);
        records.rotated = rotated.into_iter().map(|(_, k, cp)| (k, cp)).collect();
        records
    }
}

/// The sequence number for a rotated record of `key` after those in `rotated`.
pub fn next_seq(key: &str, rotated: &[(String, Checkpoint)]) -> u64 {
    rotated
        .iter()
        .filter_map(|(k, _)| match role(key, k) {
            Some(Role::Rotated { seq }) => Some(seq + 1),
            _ => None,
        })
        .max()
        .unwrap_or(1)
}

/// A file beside the log that rotation may have made.
#[derive(Debug, Clone)]
pub struct Sibling {
    pub path: PathBuf,
    pub compressed: bool,
    pub dev: u64,
    pub inode: u64,
}

/// How a sibling's name places it in the rotation, for ordering oldest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Age {
    /// `log.N[.gz]`: the larger N, the older (so the key is `u64::MAX - N`).
    Numbered(u64),
    /// `log-DATE[.gz]` (dateext): the digits sort by date.
    Dated(String),
    /// Anything else a `--rotated` glob matched: by modification time, then name.
    Other(i128, PathBuf),
}

/// The rotated siblings of `log`, oldest first: `log.N` and `log.N.gz`, `log-DIGITS` and
/// `log-DIGITS.gz` (dateext) in its directory, and the files `rotated` (a glob) matches.
pub fn siblings(log: &Path, rotated: Option<&str>) -> Vec<Sibling> {
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let Some(base) = log.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let mut found: Vec<(Age, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(age) = age_of(base, name) {
                found.push((age, dir.join(name)));
            }
        }
    }
    if let Some(pattern) = rotated {
        for path in glob::glob(pattern).into_iter().flatten().flatten() {
            if found.iter().any(|(_, p)| same_path(p, &path)) || same_path(&path, log) {
                continue;
            }
            let mtime = std::fs::metadata(&path)
                .map(|m| i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()))
                .unwrap_or(0);
            found.push((Age::Other(mtime, path.clone()), path));
        }
    }
    found.sort();
    found
        .into_iter()
        .filter_map(|(_, path)| {
            let meta = std::fs::metadata(&path).ok()?;
            meta.is_file().then(|| Sibling {
                compressed: path.extension().is_some_and(|e| e == "gz"),
                dev: meta.dev(),
                inode: meta.ino(),
                path,
            })
        })
        .collect()
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).ok() == std::fs::canonicalize(b).ok()
}

/// Where `name` stands in the rotation of the log named `base`, if it is a rotation name.
fn age_of(base: &str, name: &str) -> Option<Age> {
    let rest = name.strip_prefix(base)?;
    let rest = rest.strip_suffix(".gz").unwrap_or(rest);
    if let Some(n) = rest.strip_prefix('.')
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(Age::Numbered(u64::MAX - n.parse::<u64>().ok()?));
    }
    if let Some(date) = rest.strip_prefix('-')
        && date.len() >= 6
        && date.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && date.as_bytes()[0].is_ascii_digit()
    {
        return Some(Age::Dated(date.to_owned()));
    }
    None
}

/// An open file holding a record's lines.
#[derive(Debug)]
pub enum Opened {
    /// A plain file: read on from the offset.
    Plain(File),
    /// A `.gz`: decompressed from its start, the first `offset` bytes skipped.
    Compressed(File),
}

/// The result of looking for a record's file.
#[derive(Debug)]
pub enum Located {
    Found(PathBuf, Opened),
    /// Nowhere: deleted, or rotated out of reach.
    Gone,
    /// A candidate could not be read to the end (a `.gz` being written): look again later.
    Unsure,
}

/// Finds the file that holds what `cp` was taken on, up to its offset: a file held open
/// (`held`, the follower's handles), a sibling with its identity, a `.gz` sibling with its
/// content, or a plain copy of it (copytruncate). `skip` excludes a file by identity (the
/// current file, whose content changed under the same inode).
pub fn locate(
    cp: &Checkpoint,
    held: &[(PathBuf, &File)],
    siblings: &[Sibling],
    skip: Option<(u64, u64)>,
) -> Located {
    let usable = |file: &File| matches!(checkpoint::verify_content(file, cp, false), Ok(Ok(())));
    let identity = (cp.dev, cp.inode);
    for (name, file) in held {
        let same = file
            .metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == identity);
        if same
            && Some(identity) != skip
            && usable(file)
            && let Ok(file) = file.try_clone()
        {
            return Located::Found(name.clone(), Opened::Plain(file));
        }
    }
    let mut unsure = false;
    // Identity first, then content: a copy is only a copy when the file itself is gone.
    for by_identity in [true, false] {
        for sibling in siblings {
            let id = (sibling.dev, sibling.inode);
            if Some(id) == skip || (by_identity != (id == identity)) {
                continue;
            }
            let Ok(file) = File::open(&sibling.path) else {
                continue;
            };
            if sibling.compressed {
                match gz_holds(&file, cp, id == identity) {
                    Ok(true) => {
                        return Located::Found(sibling.path.clone(), Opened::Compressed(file));
                    }
                    Ok(false) => {}
                    Err(_) => unsure = true,
                }
            } else if (by_identity || cp.fingerprint_len > 0) && usable(&file) {
                return Located::Found(sibling.path.clone(), Opened::Plain(file));
            }
        }
    }
    if unsure {
        Located::Unsure
    } else {
        Located::Gone
    }
}

/// Does `sibling` hold what `cp` was taken on, up to its offset: the file itself (its identity
/// *and* its content: an inode freed by a compressed file and reused by a new one is not it),
/// its `.gz`, or a copy? A `.gz` that cannot be read to the end (being written) counts as
/// holding it, so that nothing is read twice; it is looked at again on the next pass.
pub fn holds(sibling: &Sibling, cp: &Checkpoint) -> bool {
    let same = (sibling.dev, sibling.inode) == (cp.dev, cp.inode);
    if (!same || sibling.compressed) && cp.fingerprint_len == 0 {
        // Nothing to recognise a copy by.
        return false;
    }
    let Ok(file) = File::open(&sibling.path) else {
        return false;
    };
    if sibling.compressed {
        gz_holds(&file, cp, same).unwrap_or(true)
    } else {
        matches!(checkpoint::verify_content(&file, cp, false), Ok(Ok(())))
    }
}

/// Does the decompressed content of `gz` begin with what `cp` was taken on? The head
/// fingerprint must match; the bytes before the offset too, unless `same_file` (a checkpoint
/// taken on this very `.gz`, whose tail hash is not kept: see [`take_gz`]).
pub fn gz_holds(gz: &File, cp: &Checkpoint, same_file: bool) -> io::Result<bool> {
    if cp.fingerprint_len == 0 {
        // Nothing to recognise the content by; and a checkpoint taken on a `.gz` has its
        // decompressed head, so an empty one is not one of those: the same inode is then one
        // that gzip freed and a new `.gz` reused.
        return Ok(false);
    }
    let mut stream = decoder(gz.try_clone()?)?;
    let mut head = vec![0u8; cp.fingerprint_len as usize];
    if read_full(&mut stream, &mut head)? < head.len() || checkpoint::fnv1a(&head) != cp.fingerprint
    {
        return Ok(false);
    }
    if same_file {
        return Ok(true);
    }
    let tail_len = cp.offset.min(WINDOW);
    let skip = cp.offset - tail_len;
    let head_len = cp.fingerprint_len;
    // The head was read already: the tail may lie in it, in part or whole.
    let mut tail = Vec::with_capacity(tail_len as usize);
    if skip < head_len {
        tail.extend_from_slice(&head[skip as usize..cp.offset.min(head_len) as usize]);
    } else {
        let gap = skip - head_len;
        if io::copy(&mut (&mut stream).take(gap), &mut io::sink())? < gap {
            return Ok(false);
        }
    }
    let want = (cp.offset - skip) as usize - tail.len();
    let mut rest = vec![0u8; want];
    if read_full(&mut stream, &mut rest)? < want {
        return Ok(false);
    }
    tail.extend_from_slice(&rest);
    Ok(checkpoint::fnv1a(&tail) == cp.tail_hash)
}

/// A checkpoint at the start of `opened`: nothing read yet, its head as it is now.
pub fn start_of(opened: &Opened) -> io::Result<Checkpoint> {
    match opened {
        Opened::Plain(file) => checkpoint::take(file, 0, 0),
        Opened::Compressed(gz) => take_gz(gz, gz_fingerprint(gz)?, 0, 0),
    }
}

/// A decompressing reader of a `.gz` from its start (several gzip members in a row are one
/// stream). Clones of a `File` share its position, so it is rewound first.
pub fn decoder(mut file: File) -> io::Result<flate2::read::MultiGzDecoder<io::BufReader<File>>> {
    use std::io::Seek;
    file.rewind()?;
    Ok(flate2::read::MultiGzDecoder::new(
        io::BufReader::with_capacity(1 << 16, file),
    ))
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The fingerprint of a `.gz`'s decompressed head: `(length, hash)`.
pub fn gz_fingerprint(gz: &File) -> io::Result<(u64, u64)> {
    let mut head = vec![0u8; WINDOW as usize];
    let n = read_full(&mut decoder(gz.try_clone()?)?, &mut head)?;
    Ok((n as u64, checkpoint::fnv1a(&head[..n])))
}

/// A checkpoint on the decompressed content of a `.gz`: its identity, the fingerprint of its
/// decompressed head (so that the same lines are recognised however they are stored), the
/// offset in decompressed bytes. The tail hash is not kept (it would cost decompressing up to
/// the offset at every commit): a `.gz` is never rewritten, so identity and head suffice.
pub fn take_gz(gz: &File, head: (u64, u64), offset: u64, line: u64) -> io::Result<Checkpoint> {
    let meta = gz.metadata()?;
    Ok(Checkpoint {
        dev: meta.dev(),
        inode: meta.ino(),
        fingerprint_len: head.0,
        fingerprint: head.1,
        offset,
        line,
        tail_hash: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(path: &Path, bytes: &[u8]) {
        let mut enc =
            flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
    }

    #[test]
    fn roles_round_trip_through_keys() {
        let cp = Checkpoint {
            dev: 1,
            inode: 2,
            fingerprint_len: 3,
            fingerprint: 4,
            offset: 5,
            line: 6,
            tail_hash: 7,
        };
        let key = "/var/log/a.log";
        assert_eq!(role(key, key), Some(Role::Current));
        assert_eq!(
            role(key, &rotated_key(key, 12, &cp)),
            Some(Role::Rotated { seq: 12 })
        );
        assert_eq!(role(key, &done_key(key, &cp)), Some(Role::Done));
        assert_eq!(role(key, "/var/log/a.log.1"), None);
        assert_eq!(log_of(&rotated_key(key, 1, &cp)), Some(key));
        assert_eq!(log_of(&done_key(key, &cp)), Some(key));
        assert_eq!(log_of(key), None);
        assert_eq!(role(key, "/var/log/b.log"), None);
        let all = vec![
            (rotated_key(key, 9, &cp), cp),
            (rotated_key(key, 10, &cp), cp),
            (key.to_owned(), cp),
        ];
        let records = Records::of(key, &all);
        assert_eq!(records.current, Some(cp));
        // Ordered by sequence number, not by key text (9 < 10).
        assert_eq!(records.rotated[0].0, rotated_key(key, 9, &cp));
        assert_eq!(next_seq(key, &records.rotated), 11);
    }

    #[test]
    fn siblings_come_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        for name in [
            "access.log",
            "access.log.1",
            "access.log.2.gz",
            "access.log.10.gz",
            "access.log.bak",
            "access.log.csv",
            "other.log.1",
        ] {
            std::fs::write(p(name), name).unwrap();
        }
        let names: Vec<String> = siblings(&p("access.log"), None)
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["access.log.10.gz", "access.log.2.gz", "access.log.1"]
        );

        let dated = tempfile::tempdir().unwrap();
        for name in ["a.log", "a.log-20261202", "a.log-20261130.gz", "a.log-x"] {
            std::fs::write(dated.path().join(name), name).unwrap();
        }
        let names: Vec<String> = siblings(&dated.path().join("a.log"), None)
            .iter()
            .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.log-20261130.gz", "a.log-20261202"]);
    }

    #[test]
    fn a_record_is_found_by_identity_then_as_gz_then_as_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let content: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, &content).unwrap();
        let cp = checkpoint::take(&File::open(&log).unwrap(), 400, 50).unwrap();

        // Renamed: found by identity.
        std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        let found = locate(&cp, &[], &siblings(&log, None), None);
        assert!(
            matches!(&found, Located::Found(p, Opened::Plain(_)) if p.ends_with("access.log.1")),
            "{found:?}"
        );

        // Compressed: found by its decompressed content.
        gz(&dir.path().join("access.log.1.gz"), content.as_bytes());
        std::fs::remove_file(dir.path().join("access.log.1")).unwrap();
        let found = locate(&cp, &[], &siblings(&log, None), None);
        assert!(
            matches!(&found, Located::Found(p, Opened::Compressed(_)) if p.ends_with("access.log.1.gz")),
            "{found:?}"
        );

        // Other content with the same head is not it.
        let mut other = content[..400].to_string();
        other.replace_range(390..395, "XXXXX");
        gz(&dir.path().join("access.log.1.gz"), other.as_bytes());
        assert!(matches!(
            locate(&cp, &[], &siblings(&log, None), None),
            Located::Gone
        ));

        // A truncated .gz (being written) is not a verdict.
        let mut bytes = Vec::new();
        let mut enc = flate2::write::GzEncoder::new(&mut bytes, flate2::Compression::fast());
        enc.write_all(content.as_bytes()).unwrap();
        enc.finish().unwrap();
        std::fs::write(
            dir.path().join("access.log.1.gz"),
            &bytes[..bytes.len() / 2],
        )
        .unwrap();
        assert!(matches!(
            locate(&cp, &[], &siblings(&log, None), None),
            Located::Unsure
        ));

        // A copy (copytruncate) with more lines than were read.
        std::fs::remove_file(dir.path().join("access.log.1.gz")).unwrap();
        std::fs::write(dir.path().join("access.log.2"), format!("{content}more\n")).unwrap();
        let found = locate(&cp, &[], &siblings(&log, None), None);
        assert!(
            matches!(&found, Located::Found(p, Opened::Plain(_)) if p.ends_with("access.log.2")),
            "{found:?}"
        );
    }

    #[test]
    fn a_gz_checkpoint_recognises_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log.3.gz");
        gz(&path, b"one\ntwo\nthree\n");
        let file = File::open(&path).unwrap();
        let head = gz_fingerprint(&file).unwrap();
        assert_eq!(head, (14, checkpoint::fnv1a(b"one\ntwo\nthree\n")));
        let cp = take_gz(&file, head, 8, 2).unwrap();
        assert!(gz_holds(&file, &cp, true).unwrap());
        let found = locate(&cp, &[], &siblings(&dir.path().join("a.log"), None), None);
        assert!(matches!(found, Located::Found(_, Opened::Compressed(_))));
    }
}
