//! What a request's strings say beyond themselves: whether a URL is a page or a static file,
//! and which site a referrer is on.
//!
//! Both are decided once per distinct URL or referrer when the counts are turned into a
//! report, never per row: they cost nothing while counting.

use std::borrow::Cow;

/// The extensions that make a URL a static file unless `--static-ext` says otherwise: what
/// a browser fetches to draw a page (styles, scripts, images, fonts) and files people
/// download, as GoAccess's "static requests" count them. A page is every other URL,
/// including `/`, `.html` and `.php`.
pub const STATIC_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "jpg", "jpeg", "png", "gif", "ico", "svg", "svgz", "webp", "avif",
    "bmp", "tif", "tiff", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4", "m4a", "ogg", "wav",
    "flac", "webm", "avi", "mov", "mpg", "mpeg", "flv", "swf", "pdf", "txt", "csv", "xml", "zip",
    "gz", "tgz", "bz2", "xz", "7z", "rar", "exe", "dmg", "iso", "doc", "docx", "xls", "xlsx",
    "ppt", "pptx",
];

/// `--static-ext`: the extensions of static files, lowercase, without their dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticExtensions(Vec<Box<str>>);

impl Default for StaticExtensions {
    fn default() -> StaticExtensions {
        StaticExtensions(STATIC_EXTENSIONS.iter().map(|&e| e.into()).collect())
    }
}

impl std::str::FromStr for StaticExtensions {
    type Err = String;

    /// A comma-separated list, each with or without its dot (`css,.js`), which replaces the
    /// default list.
    fn from_str(s: &str) -> Result<StaticExtensions, String> {
        let mut list = Vec::new();
        for item in s.split(',') {
            let ext = item.trim().trim_start_matches('.');
            if ext.is_empty() || ext.contains(['/', '.', '?', '#']) {
                return Err(format!(
                    "'{item}' is not a file extension (a list looks like css,js,png)"
                ));
            }
            list.push(ext.to_ascii_lowercase().into());
        }
        Ok(StaticExtensions(list))
    }
}

impl StaticExtensions {
    /// Whether `url` is a static file: the last segment of its path (without query or
    /// fragment) ends with one of the extensions, in any case.
    pub fn is_static(&self, url: &str) -> bool {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let last = path.rsplit('/').next().unwrap_or(path);
        match last.rsplit_once('.') {
            Some((_, ext)) => self.0.iter().any(|e| e.eq_ignore_ascii_case(ext)),
            None => false,
        }
    }
}

/// The site a referrer is on: the host of `scheme://[user@]host[:port]/…`, lowercased
/// (`https://WWW.Example.com:8443/a?b` is `www.example.com`). A referrer without a
/// `scheme://`, or with no host after it, is its own site: rolling it up would hide what it
/// is.
pub fn site_of(referrer: &str) -> Cow<'_, str> {
    // A scheme is a letter then letters, digits, `+`, `-` or `.` (RFC 3986): a `://` later
    // on (`example.com/go?u=https://other.test/`) is no scheme's.
    let scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    };
    let Some((_, rest)) = referrer.split_once("://").filter(|(s, _)| scheme(s)) else {
        return Cow::Borrowed(referrer);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        // `[v6]:port`: the address with its brackets, as a URL writes it.
        Some(inner) => match inner.find(']') {
            Some(end) => &host_port[..end + 2],
            None => host_port,
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => host_port,
        },
    };
    if host.is_empty() {
        return Cow::Borrowed(referrer);
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_files_are_known_by_the_extension_of_their_path() {
        let default = StaticExtensions::default();
        for url in [
            "/style.css",
            "/a/b/app.JS",
            "/logo.png?v=3",
            "/font.woff2#x",
            "http://example.com/x.jpg",
            "/archive.tar.gz",
        ] {
            assert!(default.is_static(url), "{url}");
        }
        for url in [
            "/",
            "/index.html",
            "/x.php?file=a.css",
            "/dir.css/page",
            "/README",
            "/.well-known/x",
            "/a.",
            "",
        ] {
            assert!(!default.is_static(url), "{url}");
        }
        let own: StaticExtensions = "PHP,.html".parse().unwrap();
        assert!(own.is_static("/index.html") && own.is_static("/x.php?a=1"));
        assert!(!own.is_static("/style.css"));
        for bad in ["", "css,", "a/b", ".", "tar.gz"] {
            assert!(bad.parse::<StaticExtensions>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_referrer_s_site_is_its_host() {
        for (referrer, site) in [
            ("https://www.example.com/a/b?c=d", "www.example.com"),
            ("http://WWW.Example.COM:8080", "www.example.com"),
            ("https://user:pw@example.org:443/x", "example.org"),
            ("http://[2001:db8::1]:8080/x", "[2001:db8::1]"),
            ("http://[2001:db8::1]/x", "[2001:db8::1]"),
            (
                "android-app://com.google.android.gm/",
                "com.google.android.gm",
            ),
            ("https://example.com?q=1", "example.com"),
            ("https://example.com#top", "example.com"),
            ("example.com/page", "example.com/page"),
            ("file:///etc/passwd", "file:///etc/passwd"),
            ("-x", "-x"),
            (
                "example.com/go?u=https://other.test/x",
                "example.com/go?u=https://other.test/x",
            ),
            ("/path://x", "/path://x"),
            ("svn+ssh://Host.example/repo", "host.example"),
        ] {
            assert_eq!(site_of(referrer), site, "{referrer}");
        }
    }
}
