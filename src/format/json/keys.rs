//! The keys each JSON log's mapping reads, as typed structs that borrow from the line: serde
//! fills them (skipping unknown keys without building them), and so does the fast reader of
//! plain lines ([`super::scan`]), which the tests hold to serde's result.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the line unless it held escapes. (serde borrows a bare
/// `Cow<str>` field but not one inside an `Option`, hence this type.)
#[derive(Debug, PartialEq)]
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A header as Caddy logs it, an array of strings (one per time the header was sent): the
/// values joined by `, `, as HTTP joins repeated headers; `None` for `[]`.
#[derive(Debug, PartialEq)]
pub(super) struct Values<'a>(pub(super) Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Values<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Values<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values<'de>, A::Error> {
                let mut joined: Option<Cow<'de, str>> = None;
                while let Some(Text(value)) = seq.next_element::<Text<'de>>()? {
                    joined = Some(match joined {
                        None => value,
                        Some(first) => Cow::Owned(format!("{first}, {value}")),
                    });
                }
                Ok(Values(joined))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A value's JSON text as written: serde's borrowed `RawValue`, as a type [`super::scan`] can make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Raw<'a>(pub(super) &'a str);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|raw| Raw(raw.get()))
    }
}

#[derive(Debug, Default, PartialEq, Deserialize)]
pub(super) struct CaddyLine<'a> {
    #[serde(borrow)]
    pub(super) logger: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) ts: Option<Raw<'a>>,
    #[serde(borrow)]
    pub(super) request: Option<CaddyRequest<'a>>,
    #[serde(borrow)]
    pub(super) user_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) duration: Option<Raw<'a>>,
    pub(super) size: Option<u64>,
    pub(super) status: Option<u64>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
pub(super) struct CaddyRequest<'a> {
    #[serde(borrow)]
    pub(super) remote_ip: Option<Text<'a>>,
    /// `ip:port`, what Caddy logged before `remote_ip` (v2.0 to v2.4).
    #[serde(borrow)]
    pub(super) remote_addr: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) proto: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) method: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) host: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) uri: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) headers: Option<CaddyHeaders<'a>>,
}

/// The request headers the entry keeps; Caddy writes their names in Go's canonical case.
#[derive(Debug, Default, PartialEq, Deserialize)]
pub(super) struct CaddyHeaders<'a> {
    #[serde(borrow, rename = "User-Agent")]
    pub(super) user_agent: Option<Values<'a>>,
    #[serde(borrow, rename = "Referer")]
    pub(super) referer: Option<Values<'a>>,
    #[serde(borrow, rename = "X-Forwarded-For")]
    pub(super) forwarded_for: Option<Values<'a>>,
}

/// Traefik's keys: its own (`PascalCase`) and the request headers it keeps, prefixed with
/// `request_` in the header's own case.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TraefikLine<'a> {
    #[serde(borrow)]
    pub(super) client_host: Option<Text<'a>>,
    /// `ip:port`, when `ClientHost` was dropped by the configuration.
    #[serde(borrow)]
    pub(super) client_addr: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) client_username: Option<Text<'a>>,
    #[serde(borrow, rename = "StartUTC")]
    pub(super) start_utc: Option<Text<'a>>,
    /// When the line was written, in seconds: the start of the request is `StartUTC`.
    #[serde(borrow, rename = "time")]
    pub(super) time: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) request_method: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) request_path: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) request_protocol: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) request_host: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) request_port: Option<Text<'a>>,
    pub(super) downstream_status: Option<u64>,
    pub(super) downstream_content_size: Option<u64>,
    /// Nanoseconds, from the request's arrival to the end of the response.
    pub(super) duration: Option<u64>,
    /// Nanoseconds the backend took.
    pub(super) origin_duration: Option<u64>,
    #[serde(borrow, rename = "request_Referer")]
    pub(super) referer: Option<Text<'a>>,
    #[serde(borrow, rename = "request_User-Agent")]
    pub(super) user_agent: Option<Text<'a>>,
    #[serde(borrow, rename = "request_X-Forwarded-For")]
    pub(super) forwarded_for: Option<Text<'a>>,
}
