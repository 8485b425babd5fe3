//! Checkpoints: how far each source file has been read, and proof that it is still the same file.
//!
//! A byte offset alone is not enough to resume safely: logrotate renames files, `copytruncate`
//! empties them in place, and a deleted file's inode is reused by the next one. So a checkpoint
//! keeps the file's identity (device and inode), a fingerprint of its first bytes (catches inode
//! reuse), and a hash of the bytes just before the offset (catches a file truncated and regrown
//! past the old offset). Only when all three still match does a run continue from the offset.
//!
//! The checkpoint is stored by the sink, next to the data it covers (in the same SQLite
//! transaction, or in a sidecar file written after the CSV bytes it describes), which is what
//! makes a run exactly-once even when it is killed at any instant.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// How many leading bytes the fingerprint covers, and how many bytes before the offset the tail
/// hash covers. 1 KiB holds several log lines: two different logs never share it.
pub const WINDOW: u64 = 1024;

/// Where a source was left, and how to recognise it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub dev: u64,
    pub inode: u64,
    /// How many leading bytes `fingerprint` hashes (less than [`WINDOW`] while the file is small).
    pub fingerprint_len: u64,
    pub fingerprint: u64,
    /// Just past the last line taken.
    pub offset: u64,
    /// Lines taken so far, so rejects can be reported by line number after a resume.
    pub line: u64,
    /// Hash of the (up to [`WINDOW`]) bytes before `offset`.
    pub tail_hash: u64,
}

/// Why a saved checkpoint does not fit the file now at its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Another file now has the path (rotation, or deleted and recreated).
    OtherFile,
    /// Same inode, but shorter than the offset: truncated in place.
    Truncated,
    /// Same inode, but the first bytes or those before the offset changed: truncated and
    /// regrown, or the inode was reused by a new file.
    Rewritten,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mismatch::OtherFile => "it is another file now (rotated or recreated)",
            Mismatch::Truncated => "it was truncated",
            Mismatch::Rewritten => {
                "its content changed before the saved offset (truncated and regrown, or replaced)"
            }
        })
    }
}

/// 64-bit FNV-1a: stable across versions and platforms (unlike std's hasher), which a hash
/// stored on disk must be, and fast enough for 2 KiB per commit.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn read_range(file: &File, start: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, start)?;
    Ok(buf)
}

/// Builds the checkpoint for `file` read up to `offset` (`line` lines taken).
pub fn take(file: &File, offset: u64, line: u64) -> std::io::Result<Checkpoint> {
    let meta = file.metadata()?;
    let fingerprint_len = meta.len().min(WINDOW);
    let tail_len = offset.min(WINDOW);
    Ok(Checkpoint {
        dev: meta.dev(),
        inode: meta.ino(),
        fingerprint_len,
        fingerprint: fnv1a(&read_range(file, 0, fingerprint_len)?),
        offset,
        line,
        tail_hash: fnv1a(&read_range(file, offset - tail_len, tail_len)?),
    })
}

/// A checkpoint for a stream that cannot be re-read at an offset (a `.gz`): identity and
/// fingerprint of the compressed file; the offset counts decompressed bytes.
pub fn take_compressed(file: &File, offset: u64, line: u64) -> std::io::Result<Checkpoint> {
    let mut cp = take(file, 0, line)?;
    cp.offset = offset;
    Ok(cp)
}

/// Does `cp` still describe `file`? `Ok(Ok(()))` means continue from `cp.offset`.
pub fn verify(
    file: &File,
    cp: &Checkpoint,
    compressed: bool,
) -> std::io::Result<Result<(), Mismatch>> {
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != (cp.dev, cp.inode) {
        return Ok(Err(Mismatch::OtherFile));
    }
    verify_content(file, cp, compressed)
}

/// [`verify`] without the identity: does `file` hold the bytes `cp` was taken on, up to its
/// offset? True of the file itself, and also of a copy of it (copytruncate rotation).
pub fn verify_content(
    file: &File,
    cp: &Checkpoint,
    compressed: bool,
) -> std::io::Result<Result<(), Mismatch>> {
    let meta = file.metadata()?;
    if meta.len() < cp.fingerprint_len || (!compressed && meta.len() < cp.offset) {
        return Ok(Err(Mismatch::Truncated));
    }
    if fnv1a(&read_range(file, 0, cp.fingerprint_len)?) != cp.fingerprint {
        return Ok(Err(Mismatch::Rewritten));
    }
    if !compressed {
        let tail_len = cp.offset.min(WINDOW);
        if fnv1a(&read_range(file, cp.offset - tail_len, tail_len)?) != cp.tail_hash {
            return Ok(Err(Mismatch::Rewritten));
        }
    }
    Ok(Ok(()))
}

/// Writes `path` so that it holds either its old or its new content, even if killed midway:
/// write a temporary file beside it, sync it, rename it over, sync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let context = || format!("cannot write {}", path.display());
    let mut file = File::create(&tmp).with_context(context)?;
    file.write_all(bytes).with_context(context)?;
    file.sync_data().with_context(context)?;
    std::fs::rename(&tmp, path).with_context(context)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable only once the directory is: without this a power cut could
        // bring back the old checkpoint beside the new rows.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn verify_tells_truncation_regrowth_and_replacement_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "line one\nline two\n").unwrap();
        let file = File::open(&path).unwrap();
        let cp = take(&file, 18, 2).unwrap();
        assert_eq!(verify(&file, &cp, false).unwrap(), Ok(()));

        // Appending keeps it valid.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"three\n")
            .unwrap();
        assert_eq!(verify(&file, &cp, false).unwrap(), Ok(()));

        // Truncated in place.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        assert_eq!(verify(&file, &cp, false).unwrap(), Err(Mismatch::Truncated));

        // Regrown past the offset with other content.
        std::fs::write(&path, "other one\nother two\nother three\n").unwrap();
        assert_eq!(verify(&file, &cp, false).unwrap(), Err(Mismatch::Rewritten));

        // Replaced by a new file at the same path.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "line one\nline two\n").unwrap();
        let new = File::open(&path).unwrap();
        let same_inode = new.metadata().unwrap().ino() == cp.inode;
        let expected = if same_inode {
            Ok(())
        } else {
            Err(Mismatch::OtherFile)
        };
        assert_eq!(verify(&new, &cp, false).unwrap(), expected);
    }
}
