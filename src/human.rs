//! Numbers and words as people read them, in reports and in the lines the tools print on
//! stderr: thousands separators, singular or plural, and lines that fit the terminal.
//!
//! Machine formats (JSON, CSV) never go through here: their numbers stay bare.

use std::fmt;

/// `n` with thousands separators: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` and the noun that goes with it: `1 line`, `2 lines`, `1,000 lines`. Nouns whose plural
/// is not an `s` more are not needed yet.
pub fn counted(n: u64, noun: &str) -> String {
    format!("{} {noun}{}", count(n), if n == 1 { "" } else { "s" })
}

/// A size in bytes: `512 bytes`, `1 byte`, else binary units with one decimal (`1.5 KiB`,
/// `3.2 GiB`), which say how much at a glance where a byte count of ten digits does not.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return counted(n, "byte");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1023.95 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time given in microseconds, in the unit that suits it, to three significant digits at
/// most: `850µs`, `12.3ms`, `1.25s`, `2m03s`, `1h05m`.
pub fn duration_us(us: u64) -> String {
    /// `value` (in some unit) with as many decimals as keep three significant digits.
    fn three(value: f64, unit: &str) -> String {
        match value {
            v if v < 9.995 => format!("{v:.2}{unit}"),
            v if v < 99.95 => format!("{v:.1}{unit}"),
            v => format!("{v:.0}{unit}"),
        }
    }
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..999_500 => three(us as f64 / 1e3, "ms"),
        999_500..59_950_000 => three(us as f64 / 1e6, "s"),
        _ => {
            let secs = us / 1_000_000 + u64::from(us % 1_000_000 >= 500_000);
            match secs {
                0..3_600 => format!("{}m{:02}s", secs / 60, secs % 60),
                _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
            }
        }
    }
}

/// A status or summary line, made of pieces that are never split ("20,000 lines",
/// "in 0.16s"), so that it can be broken between them to fit a terminal.
///
/// Written as it is (`Display`), it is one line, as logs and scripts want it; [`Line::fit`]
/// breaks it for a terminal, and shortens a path that alone is wider than one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// Text, then a path that may be shortened from its start to fit.
    Path(String, String),
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Text(t) => t.chars().count(),
            Piece::Path(before, path) => before.chars().count() + path.chars().count(),
        }
    }
}

impl fmt::Display for Piece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Piece::Text(t) => f.write_str(t),
            Piece::Path(before, path) => write!(f, "{before}{path}"),
        }
    }
}

impl Line {
    /// A line starting with `text`, split at its spaces.
    pub fn new(text: &str) -> Line {
        let mut line = Line::default();
        line.words(text);
        line
    }

    /// Adds `text`, split at its spaces.
    pub fn words(&mut self, text: &str) -> &mut Line {
        let words = text.split(' ').filter(|w| !w.is_empty());
        self.pieces.extend(words.map(|w| Piece::Text(w.to_owned())));
        self
    }

    /// Adds `text` as one piece, never split.
    pub fn piece(&mut self, text: impl Into<String>) -> &mut Line {
        self.pieces.push(Piece::Text(text.into()));
        self
    }

    /// Adds `before` and `path` as one piece (`into logs.db`), whose path is shortened from
    /// its start when the piece alone is wider than the terminal.
    pub fn path(&mut self, before: &str, path: impl fmt::Display) -> &mut Line {
        self.pieces
            .push(Piece::Path(before.to_owned(), path.to_string()));
        self
    }

    /// Appends `text` to the last piece, with no space: punctuation (`,` `;` `)`).
    pub fn glue(&mut self, text: &str) -> &mut Line {
        match self.pieces.last_mut() {
            Some(Piece::Text(t) | Piece::Path(_, t)) => t.push_str(text),
            None => self.pieces.push(Piece::Text(text.to_owned())),
        }
        self
    }

    /// The line broken between its pieces into lines of at most `width` columns, the
    /// following ones indented by two; as one line when `width` is `None` (not a terminal).
    pub fn fit(&self, width: Option<usize>) -> String {
        let Some(width) = width else {
            return self.to_string();
        };
        const INDENT: &str = "  ";
        let mut out = String::new();
        let mut column = 0;
        for piece in &self.pieces {
            let len = piece.len();
            if column > 0 && column + 1 + len <= width {
                out.push(' ');
                column += 1;
            } else if column > 0 {
                out.push('\n');
                out.push_str(INDENT);
                column = INDENT.len();
            }
            let room = width.saturating_sub(column);
            let text = match piece {
                Piece::Path(before, path) if len > room => {
                    let keep = room.saturating_sub(before.chars().count());
                    format!("{before}{}", path_tail(path, keep))
                }
                _ => piece.to_string(),
            };
            column += text.chars().count();
            out.push_str(&text);
        }
        out
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{piece}")?;
        }
        Ok(())
    }
}

/// The end of `path` in at most `max` characters: whole components after `…/` where they
/// fit (`…/logs/access.log`), else the end of the last one after `…`. The file name is what
/// tells one log from another; its directories are what a terminal can spare.
pub fn path_tail(path: &str, max: usize) -> String {
    let len = path.chars().count();
    if len <= max {
        return path.to_owned();
    }
    let mut start = None;
    for (i, c) in path.char_indices() {
        if c == '/' && path[i..].chars().count() < max {
            start = Some(i);
            break;
        }
    }
    match start {
        Some(i) => format!("…{}", &path[i..]),
        None => {
            let skip = len - max.saturating_sub(1);
            format!("…{}", path.chars().skip(skip).collect::<String>())
        }
    }
}

/// The width to fit status lines to: `$COLUMNS`, else the terminal's when stderr is one (80
/// if it does not say), else none: a file or a pipe gets each line whole, for grep.
pub fn stderr_width() -> Option<usize> {
    use std::io::IsTerminal;
    let columns = std::env::var("COLUMNS").ok();
    if let Some(n) = columns
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return Some(n);
    }
    let stderr = std::io::stderr();
    stderr.is_terminal().then(|| {
        terminal_size::terminal_size_of(&stderr)
            .map(|(width, _)| usize::from(width.0))
            .filter(|&w| w > 0)
            .unwrap_or(80)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_unit_that_suits_them() {
        let cases = [
            (0, "0µs"),
            (999, "999µs"),
            (1_000, "1.00ms"),
            (12_345, "12.3ms"),
            (999_499, "999ms"),
            (999_500, "1.00s"),
            (1_250_000, "1.25s"),
            (59_949_999, "59.9s"),
            (59_950_000, "1m00s"),
            (123_000_000, "2m03s"),
            (3_900_000_000, "1h05m"),
            (u64::MAX, "5124095576h01m"),
        ];
        for (us, text) in cases {
            assert_eq!(duration_us(us), text, "{us} µs");
        }
    }

    #[test]
    fn counts_get_separators_and_nouns_their_number() {
        assert_eq!(count(0), "0");
        assert_eq!(count(12), "12");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(counted(0, "line"), "0 lines");
        assert_eq!(counted(1, "line"), "1 line");
        assert_eq!(counted(2, "line"), "2 lines");
        assert_eq!(counted(20000, "line"), "20,000 lines");
    }

    #[test]
    fn sizes_in_bytes_then_binary_units() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1), "1 byte");
        assert_eq!(bytes(1023), "1,023 bytes");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1024 * 1024 - 1), "1.0 MiB", "never 1024.0 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(bytes(u64::MAX), "16.0 EiB");
    }

    fn summary(path: &str) -> Line {
        let mut line = Line::new("parse-to-db: read");
        line.piece(counted(20000, "line")).glue(",");
        line.words("wrote").piece(count(19998)).glue(",");
        line.words("rejected 2 (format 1, timestamp 1) in 0.16s");
        line.piece("(121,641 lines/s)").path("into ", path);
        line
    }

    #[test]
    fn a_line_is_whole_off_a_terminal_and_broken_between_pieces_on_one() {
        let line = summary("logs.db");
        let whole = "parse-to-db: read 20,000 lines, wrote 19,998, rejected 2 (format 1, \
                     timestamp 1) in 0.16s (121,641 lines/s) into logs.db";
        assert_eq!(line.to_string(), whole);
        assert_eq!(line.fit(None), whole);
        assert_eq!(line.fit(Some(200)), whole);
        assert_eq!(
            line.fit(Some(80)),
            "parse-to-db: read 20,000 lines, wrote 19,998, rejected 2 (format 1, timestamp 1)\n  \
             in 0.16s (121,641 lines/s) into logs.db"
        );
        for width in [20, 40, 60, 80, 100] {
            let fitted = line.fit(Some(width));
            assert!(
                fitted.lines().all(|l| l.chars().count() <= width),
                "{width}:\n{fitted}"
            );
            assert_eq!(
                fitted.replace("\n  ", " "),
                whole,
                "nothing but breaks is added"
            );
        }
    }

    #[test]
    fn a_path_wider_than_the_terminal_keeps_its_end() {
        let deep = format!("/srv/{}logs/logs.db", "very-long-directory/".repeat(6));
        let fitted = summary(&deep).fit(Some(80));
        assert!(fitted.lines().all(|l| l.chars().count() <= 80), "{fitted}");
        let last = fitted.lines().last().unwrap();
        assert!(
            last.starts_with("  into …/very-long-directory/"),
            "{fitted}"
        );
        assert!(
            last.ends_with("/very-long-directory/logs/logs.db"),
            "{fitted}"
        );
        // A path that fits on a line of its own is never shortened.
        let fitted = summary("/srv/www/example.com/logs/access.db").fit(Some(44));
        assert!(
            fitted.contains("\n  into /srv/www/example.com/logs/access.db"),
            "{fitted}"
        );
    }

    #[test]
    fn path_tails_keep_whole_components_then_the_end_of_the_name() {
        assert_eq!(path_tail("logs/access.log", 20), "logs/access.log");
        assert_eq!(path_tail("/a/b/c/logs/access.log", 18), "…/logs/access.log");
        assert_eq!(path_tail("/a/b/c/logs/access.log", 12), "…/access.log");
        assert_eq!(path_tail("/a/b/c/logs/access.log", 8), "…ess.log");
        assert_eq!(path_tail("/a/é/ü/logs/accèss.log", 12), "…/accèss.log");
        assert!(path_tail("x", 0).chars().count() <= 1);
    }
}
