//! Where a ClickHouse database is, as `--db` names it, with the password kept out of every
//! message.

use std::fmt;

/// The prefix that makes `--db` a ClickHouse address rather than a SQLite path.
pub const SCHEME: &str = "clickhouse://";

/// Where a ClickHouse database is: `clickhouse://[user[:password]@]host[:port][,host[:port]...]/database`.
/// Several hosts are the nodes of a cluster (`--cluster`): the tables are created on each,
/// and reads and writes go to the first that answers.
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    pub user: Option<String>,
    pub(super) password: Option<String>,
    pub nodes: Vec<(String, u16)>,
    pub database: String,
}

/// The password is never shown: not in messages, not in `{:?}`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SCHEME)?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        for (i, (host, port)) in self.nodes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match host.contains(':') {
                true => write!(f, "{sep}[{host}]:{port}")?,
                false => write!(f, "{sep}{host}:{port}")?,
            }
        }
        write!(f, "/{}", self.database)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Address {
    /// Reads an address; `None` when `s` is not a `clickhouse://` one (a SQLite path).
    pub fn parse(s: &str) -> Option<Result<Address, String>> {
        let rest = s.strip_prefix(SCHEME)?;
        Some(Address::parse_rest(rest))
    }

    fn parse_rest(rest: &str) -> Result<Address, String> {
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let database = match database.trim_end_matches('/') {
            "" => "default".to_owned(),
            name if name.eq_ignore_ascii_case("system")
                || name.eq_ignore_ascii_case("information_schema") =>
            {
                return Err(format!("{name} is the server's own database: name another"));
            }
            // A name SQL takes as it is, unquoted.
            name if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                name.to_owned()
            }
            name => {
                return Err(format!(
                    "the database name {name:?} is not a letter or _ followed by letters, \
                     digits and _"
                ));
            }
        };
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            None => (None, None),
            Some(c) => {
                let (u, p) = match c.split_once(':') {
                    Some((u, p)) => (u, Some(percent_decode(p)?)),
                    None => (c, None),
                };
                (Some(percent_decode(u)?), p)
            }
        };
        let mut nodes = Vec::new();
        for node in hosts.split(',') {
            nodes.push(parse_node(node)?);
        }
        Ok(Address {
            user,
            password,
            nodes,
            database,
        })
    }
}

fn parse_node(node: &str) -> Result<(String, u16), String> {
    if node.is_empty() {
        return Err("no host: clickhouse://[user[:password]@]host[:port]/database".into());
    }
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{node:?}: an IPv6 address needs its closing ]"))?;
        (host, after.strip_prefix(':'))
    } else {
        match node.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (node, None),
        }
    };
    let port = match port {
        None => 8123,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))?,
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % in the user or password is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8".to_owned())
}

pub(super) fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_names_its_nodes_and_database_and_never_shows_the_password() {
        let a = Address::parse("clickhouse://ann:s%40cret@db1:9000,[::1]/web")
            .unwrap()
            .unwrap();
        assert_eq!(a.user.as_deref(), Some("ann"));
        assert_eq!(a.password.as_deref(), Some("s@cret"));
        assert_eq!(
            a.nodes,
            [("db1".to_owned(), 9000), ("::1".to_owned(), 8123)]
        );
        assert_eq!(a.database, "web");
        assert_eq!(a.to_string(), "clickhouse://ann@db1:9000,[::1]:8123/web");
        assert!(!format!("{a:?}").contains("cret"));
        let plain = Address::parse("clickhouse://localhost").unwrap().unwrap();
        assert_eq!(plain.to_string(), "clickhouse://localhost:8123/default");
        assert!(Address::parse("logs.db").is_none());
        assert!(Address::parse("clickhouse://h:0/x").unwrap().is_err());
        assert!(Address::parse("clickhouse:///x").unwrap().is_err());
        assert!(Address::parse("clickhouse://h/x;drop").unwrap().is_err());
    }
}
