//! Outputs as private as the logs they come from (issue #18).
//!
//! Access logs hold personal data, and servers keep them private (Debian writes
//! `access.log` 0640, readable by `adm`). Everything a tool makes from them (the database
//! and its `-wal`/`-shm`, the CSV, checkpoints, locks, the rejects file, `.offset`) is
//! created no more readable than the most restrictive input: the process's umask is widened
//! to mask every permission bit the logs do not have, before anything is created. One
//! setting covers every file, the ones SQLite creates on its own included, where a mode
//! passed at each creation would miss some. No tool that reads logs creates directories, to
//! which the mask would deny `x`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::ingest::Input;

/// The permission bits an output may have: those every input has (a symbolic link counts
/// as its target, whose bits protect the content), read and write only. Standard input, or
/// an input that is not there yet, gives 0600: nothing says who else may read it.
pub fn output_mode(inputs: &[Input]) -> u32 {
    inputs.iter().fold(0o666, |mode, input| {
        let bits = match input {
            Input::Stdin => 0o600,
            Input::File(path) => std::fs::metadata(path).map_or(0o600, |m| m.mode() & 0o666),
        };
        mode & bits
    })
}

/// Makes every file this process creates from now on no more readable than `mode` allows
/// (the umask keeps what it already masked). Call before anything is created, and before
/// any thread starts: the umask is the process's.
pub fn restrict_created_files(mode: u32) {
    let mask = !mode & 0o777;
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    unsafe {
        let old = libc::umask(mask as libc::mode_t);
        libc::umask(old | mask as libc::mode_t);
    }
}

/// Warns about each of `outputs` that exists and lets more people read or write it than
/// `mode` allows: it was made before, or by something else. It is left as it is (changing
/// modes behind the user's back could break their set-up), with the command that fixes it.
pub fn warn_if_wider(outputs: &[&Path], mode: u32, warn: &mut dyn FnMut(String)) {
    for path in outputs {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let bits = meta.permissions().mode() & 0o777;
        if bits & !mode & 0o666 != 0 {
            warn(format!(
                "{} is readable or writable by more people ({bits:04o}) than the logs it comes \
                 from ({mode:04o}); to fix: chmod {:04o} {}",
                path.display(),
                bits & mode,
                path.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_mode_is_what_every_input_allows() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, "x\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            Input::File(path)
        };
        let adm = file("access.log", 0o640);
        let open = file("other.log", 0o644);
        let private = file("private.log", 0o600);
        assert_eq!(output_mode(std::slice::from_ref(&open)), 0o644);
        assert_eq!(output_mode(&[open.clone(), adm.clone()]), 0o640);
        assert_eq!(output_mode(&[adm, private.clone()]), 0o600);
        assert_eq!(output_mode(&[open.clone(), Input::Stdin]), 0o600);
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(dir.path().join("private.log"), &link).unwrap();
        assert_eq!(output_mode(&[Input::File(link)]), 0o600);
        let missing = Input::File(dir.path().join("missing.log"));
        assert_eq!(output_mode(&[open, missing]), 0o600);
        let _ = private;
    }

    #[test]
    fn a_wider_output_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("logs.db");
        std::fs::write(&db, "").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut said = Vec::new();
        warn_if_wider(&[&db, &dir.path().join("none")], 0o640, &mut |m| {
            said.push(m)
        });
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("(0644)") && said[0].contains("chmod 0640"),
            "{}",
            said[0]
        );
        said.clear();
        warn_if_wider(&[&db], 0o644, &mut |m| said.push(m));
        assert!(said.is_empty());
    }
}
