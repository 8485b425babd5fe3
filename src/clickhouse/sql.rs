//! The text ClickHouse reads and writes: string literals in SQL, and TabSeparated fields of
//! its answers.

/// Quotes a string for a ClickHouse SQL literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Reads back a TabSeparated field as the server writes it: `\\t`, `\\n`, `\\\\`... unescaped.
pub fn tsv_unescape(field: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 1 < field.len() {
            out.push(match field[i + 1] {
                b't' => b'\t',
                b'n' => b'\n',
                b'r' => b'\r',
                b'0' => 0,
                b'b' => 8,
                b'f' => 12,
                b'a' => 7,
                b'v' => 11,
                other => other,
            });
            i += 2;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_the_server_escapes_them_are_read_back() {
        for (field, bytes) in [
            (&b"plain"[..], &b"plain"[..]),
            (b"a\\tb\\nc\\\\d\\re\\0", b"a\tb\nc\\d\re\0"),
            (b"it\\'s", b"it's"),
            (b"\xff\xfe", b"\xff\xfe"),
        ] {
            let mut back = Vec::new();
            tsv_unescape(field, &mut back);
            assert_eq!(back, bytes);
        }
    }
}
