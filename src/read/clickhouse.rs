//! Reading a ClickHouse database back for the reports, as much of it counted by the server
//! as gives the same reports as a SQLite store of the same lines: groups of alike entries fed
//! to the one counter ([`grouped`]), visitors and clients counted by the server
//! ([`by_server`]), or, for the rest, each entry's columns that the reports use ([`entries`]);
//! the rejects grouped by the server.

use anyhow::bail;

use crate::clickhouse::{Failure, Kind, Tables, quote, tsv_unescape};
use crate::privacy::strip_query;
use crate::report::count::{Counter, Group, Needs, RowCounter, VisitorRule, Wants};
use crate::report::filter::{Alternatives, Crawlers, Filters, MethodFilter, StatusFilter};
use crate::report::shard;
use crate::report::{Counts, Query, RejectGroup, Section};
use crate::row::Row;
use crate::zone::LogOffsets;
use crate::zone::Zone;

/// `WHERE` for rows of `kind` of the hosts asked for (all without `--host`).
fn rows_of(kind: Kind, hosts: &[String]) -> String {
    let mut sql = format!("kind = {}", kind as u8);
    if !hosts.is_empty() {
        let list: Vec<String> = hosts.iter().map(|h| quote(h)).collect();
        sql.push_str(&format!(" AND host IN ({})", list.join(", ")));
    }
    sql
}

fn failed(tables: &Tables, e: Failure) -> anyhow::Error {
    match e {
        Failure::Invalid(message) => anyhow::anyhow!("{message}"),
        e => anyhow::anyhow!("{}: {e}", tables.client.address()),
    }
}

/// The offsets the entries of `hosts` were written in, as their writers recorded them.
pub fn log_offsets(tables: &Tables, hosts: &[String]) -> anyhow::Result<LogOffsets> {
    tables.check().map_err(|e| failed(tables, e))?;
    let states = text_rows(
        tables,
        &format!(
            "SELECT argMax(state, seq) FROM {} WHERE {} GROUP BY host",
            tables.logs(),
            rows_of(Kind::Progress, hosts)
        ),
    )?;
    let mut all = LogOffsets::Unknown;
    for row in states {
        let state: serde_json::Value = serde_json::from_str(&row[0])?;
        if let Some(setting) = state["offsets"].as_str() {
            all.merge(LogOffsets::from_setting(setting));
        }
    }
    Ok(all)
}

/// The counts of the entries of `hosts` that pass the query's filters. Reports that need
/// no single request (no visitors or clients) are grouped by the server ([`grouped`]): one
/// row per minute and key travels. Visitors and clients, under the filters the server can
/// apply itself, are counted by the server ([`by_server`]). The rest reads each entry, of
/// only the columns it uses ([`entries`]). Either way the one counter counts what arrives,
/// so that the reports are a SQLite store's.
pub fn counts(tables: &Tables, hosts: &[String], query: &Query) -> anyhow::Result<Counts> {
    tables.check().map_err(|e| failed(tables, e))?;
    let mut where_ = rows_of(Kind::Entry, hosts);
    // The time filters are the server's too: a group must not straddle them.
    if let Some(t) = query.filters.since {
        where_.push_str(&format!(" AND timestamp >= {}", t.timestamp()));
    }
    if let Some(t) = query.filters.until {
        where_.push_str(&format!(" AND timestamp <= {}", t.timestamp()));
    }
    let wants = query.wants();
    let mut counts = if Counter::groups_allowed(wants) {
        grouped(tables, &where_, query, (wants, Per::Minute), None)?
    } else if let Some((filters, url)) = visits_on_server(tables, &where_, query)? {
        by_server(tables, (&format!("{where_}{filters}"), &url), query)?
    } else {
        entries(tables, &where_, query)?
    };
    if query.sections.contains(&Section::Rejects) {
        counts.rejects = rejects(tables, hosts)?;
    }
    if !hosts.is_empty() {
        counts.store_filters.push(("host".into(), hosts.join(",")));
    }
    if query.sections.contains(&Section::Hosts) {
        let mut by_host = rustc_hash::FxHashMap::<Box<str>, u64>::default();
        // Only the filters' keys: a query of no report.
        let totals = Query {
            sections: Vec::new(),
            ..query.clone()
        };
        grouped(
            tables,
            &where_,
            &totals,
            (totals.wants(), Per::Minute),
            Some(&mut by_host),
        )?;
        counts.hosts = by_host.into_iter().collect();
    }
    Ok(counts)
}

/// A value that differs from the last one given when rows were written or removed since:
/// every INSERT of a writer holds one progress row of its own host and `seq`, and `--retain`
/// drops whole days, each with the progress rows of the INSERTs that wrote it. A table
/// dropped and made again, whose `seq`s start again, has a new metadata time.
pub fn version(tables: &Tables) -> anyhow::Result<String> {
    let rows = text_rows(
        tables,
        &format!(
            "SELECT count(), sum(cityHash64(host, seq)), (SELECT max(metadata_modification_time) \
             FROM system.tables WHERE database = {} AND name IN ('logs', 'logs_all')) \
             FROM {} WHERE kind = {}",
            quote(&tables.client.address().database),
            tables.logs(),
            Kind::Progress as u8
        ),
    )?;
    Ok(rows.concat().join(" "))
}

/// Those of `hosts` that have no progress row: no writer ever wrote for them.
pub fn unknown_hosts(tables: &Tables, hosts: &[String]) -> anyhow::Result<Vec<String>> {
    if hosts.is_empty() {
        return Ok(Vec::new());
    }
    tables.check().map_err(|e| failed(tables, e))?;
    let known = text_rows(
        tables,
        &format!(
            "SELECT DISTINCT host FROM {} WHERE {}",
            tables.logs(),
            rows_of(Kind::Progress, hosts)
        ),
    )?;
    Ok(hosts
        .iter()
        .filter(|h| !known.iter().any(|row| row[0] == **h))
        .cloned()
        .collect())
}

/// How [`grouped`] groups: per minute (every count right), or without time (only the counts
/// per key right: the totals are then not used).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Per {
    Minute,
    Key,
}

/// The counts from groups of alike entries, one per minute and key the reports use
/// (`wants`); with `by_host`, also the hits of each host that pass the filters.
fn grouped(
    tables: &Tables,
    where_: &str,
    query: &Query,
    (wants, per): (Wants, Per),
    mut by_host: Option<&mut rustc_hash::FxHashMap<Box<str>, u64>>,
) -> anyhow::Result<Counts> {
    let needs = Needs::of(wants, &query.filters);
    let keys: Vec<(&str, bool, &str)> = vec![
        ("host", by_host.is_some(), "''"),
        ("ip", needs.client, "''"),
        ("method", needs.method, "NULL"),
        ("url", needs.url, "''"),
        ("status", true, ""),
        ("referrer", needs.referrer, "NULL"),
        ("user_agent", needs.agent, "NULL"),
        ("response_time_us", wants.times, "NULL"),
    ];
    let select: Vec<String> = keys
        .iter()
        .map(|&(name, used, none)| match used {
            true => format!("`{name}`"),
            false => none.to_owned(),
        })
        .collect();
    let mut group_by = match per {
        Per::Minute => vec![floor_div("timestamp", 60)],
        Per::Key => Vec::new(),
    };
    group_by.extend(
        keys.iter()
            .filter(|(_, used, _)| *used)
            .map(|(name, _, _)| format!("`{name}`")),
    );
    let sql = format!(
        "SELECT {}, count(), sum(ifNull(bytes, 0)), min(timestamp), max(timestamp) FROM {} \
         WHERE {where_} GROUP BY {} FORMAT TabSeparated",
        select.join(", "),
        tables.logs(),
        group_by.join(", ")
    );
    let mut counter = RowCounter::new(wants, &query.filters);
    let mut fields: [Vec<u8>; 12] = Default::default();
    let mut bad = None;
    let mut number = 0u64;
    each_line(tables, &sql, &mut |line| {
        number += 1;
        match group_of(line, &mut fields, &mut counter) {
            None => {
                bad = Some(number);
                return false;
            }
            Some((true, hits)) => {
                if let Some(by_host) = by_host.as_deref_mut() {
                    let host = String::from_utf8_lossy(&fields[0]);
                    match by_host.get_mut(host.as_ref()) {
                        Some(n) => *n += hits,
                        None => {
                            by_host.insert(host.into(), hits);
                        }
                    }
                }
            }
            Some((false, _)) => {}
        }
        true
    })?;
    if let Some(n) = bad {
        bail!(
            "{}: row {n} of the answer is not what log-pipeline asked for",
            tables.client.address()
        );
    }
    Ok(counter.into_counts())
}

/// The answer of `sql` (without its FORMAT), as the text of each field of each row.
fn text_rows(tables: &Tables, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    each_line(tables, &format!("{sql} FORMAT TabSeparated"), &mut |line| {
        let fields = line.split(|&b| b == b'\t').map(|f| {
            let mut text = Vec::new();
            tsv_unescape(f, &mut text);
            String::from_utf8_lossy(&text).into_owned()
        });
        out.push(fields.collect());
        true
    })?;
    Ok(out)
}

/// `x` divided by `n`, rounded down (ClickHouse's `intDiv` rounds toward zero), in SQL.
fn floor_div(x: &str, n: i64) -> String {
    format!("(intDiv({x}, {n}) - if(({x}) % {n} < 0, 1, 0))")
}

/// Whether the server can count the visitors and clients of `query`, and the SQL of its
/// filters if so. `--status` and `--method` the server applies as the counter does. The
/// filters that only the counter can apply (a regular expression, an address range, a
/// crawler's agent) each look at one column: its values among the rows of `where_` pass
/// through the counter's own filter here, and go back as the list of those that pass
/// ([`passing`]), when it is short enough for a query. Returns that SQL, and the SQL of a
/// URL as the reports group it ([`url_key`]).
fn visits_on_server(
    tables: &Tables,
    where_: &str,
    query: &Query,
) -> anyhow::Result<Option<(String, String)>> {
    let f = &query.filters;
    let Some(url) = url_key(tables, where_, f.strip_query)? else {
        return Ok(None);
    };
    let mut sql = String::new();
    // Whether given, the column's SQL, its filters alone, and a row of one of its values.
    type Column = (bool, &'static str, Filters, fn(&str) -> Row<'_>);
    let columns: [Column; 3] = [
        (
            f.agent.is_some() || f.crawlers != Crawlers::Include,
            // As the counter sees an absent agent.
            "ifNull(user_agent, '-')",
            Filters {
                agent: f.agent.clone(),
                crawlers: f.crawlers,
                ..Filters::default()
            },
            |text| Row {
                user_agent: Some(text),
                ..neutral_row()
            },
        ),
        (
            f.ip.is_some() || f.exclude_ip.is_some(),
            "ip",
            Filters {
                ip: f.ip.clone(),
                exclude_ip: f.exclude_ip.clone(),
                ..Filters::default()
            },
            |text| Row {
                ip: text,
                ..neutral_row()
            },
        ),
        (
            f.url.is_some() || f.exclude_url.is_some(),
            "url",
            Filters {
                url: f.url.clone(),
                exclude_url: f.exclude_url.clone(),
                // `--url` sees a URL as the report groups it.
                strip_query: f.strip_query,
                ..Filters::default()
            },
            |text| Row {
                url: text,
                ..neutral_row()
            },
        ),
    ];
    for (given, column, only, row) in columns {
        if given {
            match passing(tables, where_, column, &only, row)? {
                Some(predicate) => sql.push_str(&predicate),
                None => return Ok(None),
            }
        }
    }
    if let Some(status) = &f.status {
        let one = |s: &StatusFilter| match s {
            StatusFilter::Code(code) => format!("status = {code}"),
            StatusFilter::Class(class) => format!("intDiv(status, 100) = {class}"),
        };
        sql.push_str(&alternatives(status, one));
    }
    if let Some(methods) = &f.method {
        // As the counter compares them: ASCII case aside, an absent method is `-`.
        let one = |m: &MethodFilter| format!("upper(ifNull(method, '-')) = {}", quote(m.name()));
        sql.push_str(&alternatives(methods, one));
    }
    // The lists together, once in a query: within the server's limit with room to spare.
    if sql.len() + url.len() > MAX_LISTS {
        return Ok(None);
    }
    Ok(Some((sql, url)))
}

/// The SQL of a row's URL as the reports group it: `url`, or with `--strip-query`, each URL
/// of the rows of `where_` that has a query string mapped to the URL without it (by
/// [`strip_query`], as the counter strips it), when the map is short enough for a query.
fn url_key(tables: &Tables, where_: &str, strip: bool) -> anyhow::Result<Option<String>> {
    if !strip {
        return Ok(Some("url".into()));
    }
    let urls = text_rows(
        tables,
        &format!(
            "SELECT DISTINCT url FROM {} WHERE {where_} AND position(url, '?') > 0",
            tables.logs()
        ),
    )?;
    let (mut from, mut to, mut len) = (Vec::new(), Vec::new(), 0);
    for row in &urls {
        let raw = &row[0];
        let stripped = strip_query(raw);
        if stripped != raw.as_str() {
            let (a, b) = (quote(raw), quote(&stripped));
            len += a.len() + b.len() + 4;
            if len > MAX_LIST {
                return Ok(None);
            }
            from.push(a);
            to.push(b);
        }
    }
    Ok(Some(match from.is_empty() {
        true => "url".into(),
        false => format!(
            "transform(url, [{}], [{}], url)",
            from.join(", "),
            to.join(", ")
        ),
    }))
}

/// A request of no particular kind, for [`passing`]: filled in with one column's value.
fn neutral_row() -> Row<'static> {
    Row {
        ip: "",
        timestamp: 0,
        method: None,
        url: "",
        status: 200,
        bytes: None,
        referrer: None,
        user_agent: None,
        response_time_us: None,
    }
}

/// Longest list of values [`passing`] or [`url_key`] sends: well within a server's default
/// limit on the length of a query (256 KiB), which every query of [`by_server`] repeats it in.
const MAX_LIST: usize = 128 << 10;
/// Longest the lists of one query may be together.
const MAX_LISTS: usize = 192 << 10;

/// ` AND` the SQL that keeps the rows whose `column` passes `filters` (of that column alone):
/// its distinct values among the rows of `where_`, each given to the counter's filter as
/// `row` makes it, as the shorter list of those that pass or those that do not. `None` when
/// that list is longer than [`MAX_LIST`].
fn passing(
    tables: &Tables,
    where_: &str,
    column: &str,
    filters: &Filters,
    row: fn(&str) -> Row<'_>,
) -> anyhow::Result<Option<String>> {
    let values = text_rows(
        tables,
        &format!(
            "SELECT DISTINCT {column} FROM {} WHERE {where_}",
            tables.logs()
        ),
    )?;
    let mut counter = RowCounter::new(Wants::NONE, filters);
    let (mut pass, mut fail) = (Vec::new(), Vec::new());
    let (mut pass_len, mut fail_len) = (0, 0);
    for value in &values {
        let text = &value[0];
        let one = row(text);
        let (list, len) = match counter.add_group(&one, &Group::one(0, 0)) {
            true => (&mut pass, &mut pass_len),
            false => (&mut fail, &mut fail_len),
        };
        let quoted = quote(text);
        *len += quoted.len() + 2;
        list.push(quoted);
    }
    Ok(match (pass.is_empty(), fail.is_empty()) {
        (_, true) => Some(String::new()),
        (true, false) => Some(" AND 0".into()),
        _ if pass_len.min(fail_len) > MAX_LIST => None,
        _ if pass_len <= fail_len => Some(format!(" AND {column} IN ({})", pass.join(", "))),
        _ => Some(format!(" AND {column} NOT IN ({})", fail.join(", "))),
    })
}

/// The zone's offset at each row's `timestamp`, in SQL, for the rows of `where_`: a number,
/// or, for a zone that changes its offset within their days, the offset between each change,
/// from the same zone data as the counter's (not the server's), so that a day is the same
/// stretch of seconds here and there. Only the days that hold rows are looked at: one row of
/// a garbage time far in the future adds one day, not the centuries before it.
fn offset_sql(tables: &Tables, where_: &str, zone: &Zone) -> anyhow::Result<String> {
    if let Zone::Utc | Zone::Fixed(_) = zone {
        return Ok(zone.offset_at(0).to_string());
    }
    let days = text_rows(
        tables,
        &format!(
            "SELECT DISTINCT {} AS d FROM {} WHERE {where_} ORDER BY d",
            floor_div("timestamp", 86_400),
            tables.logs()
        ),
    )?;
    // The offset at the first row's day, and the changes after it (one at the start of a
    // day when a change fell between two days that hold rows).
    let (mut initial, mut current) = (None, None);
    let mut changes = Vec::new();
    for row in days {
        let start = row[0].parse::<i64>()? * 86_400;
        let (first, within) = zone.changes(start, start + 86_399);
        match current {
            None => initial = Some(first),
            Some(offset) if offset != first => changes.push((start, first)),
            Some(_) => {}
        }
        current = Some(within.last().map_or(first, |c| c.1));
        changes.extend(within);
    }
    // No rows: no day to count.
    Ok(initial.map_or("0".into(), |initial| piecewise(initial, &changes)))
}

/// The offset `initial` until the first of `changes`, then each change's: a number, or a
/// `multiIf` of `timestamp`.
fn piecewise(initial: i32, changes: &[(i64, i32)]) -> String {
    let Some(&(first, _)) = changes.first() else {
        return initial.to_string();
    };
    let mut sql = format!("multiIf(timestamp < {first}, {initial}");
    for pair in changes.windows(2) {
        sql.push_str(&format!(", timestamp < {}, {}", pair[1].0, pair[0].1));
    }
    let last = changes.last().expect("not empty").1;
    sql.push_str(&format!(", {last})"));
    sql
}

/// ` AND` the SQL of `--status` or `--method`: one of the kept values, if any, and none of
/// those left out, as [`crate::report::filter::Alternatives::accepts`] decides.
fn alternatives<T>(values: &Alternatives<T>, one: impl Fn(&T) -> String) -> String {
    let mut sql = String::new();
    if !values.keep.is_empty() {
        let any: Vec<String> = values.keep.iter().map(&one).collect();
        sql.push_str(&format!(" AND ({})", any.join(" OR ")));
    }
    for value in &values.drop {
        sql.push_str(&format!(" AND NOT ({})", one(value)));
    }
    sql
}

/// The counts of a query that [`visits_on_server`] allows, the server doing all the
/// counting: the totals per minute, the hits of each URL, agent, referrer and method and the
/// response times of each URL in one group each, and the visitors (client, day, agent) and
/// clients with `uniqExact`. Only one
/// row per key travels, and the counter here keeps nothing per visitor.
fn by_server(
    tables: &Tables,
    (where_, url): (&str, &str),
    query: &Query,
) -> anyhow::Result<Counts> {
    let wants = query.wants();
    let none = Wants {
        zone: wants.zone,
        visitors: wants.visitors,
        top: wants.top,
        ..Wants::NONE
    };
    let mut counts = grouped(tables, where_, query, (none, Per::Minute), None)?;
    // Each ranking from a query of its own, grouped by its key alone: whether it is wanted,
    // how to ask for it alone, and where its counts go.
    type Ranking = (bool, fn(&mut Wants), fn(Counts, &mut Counts));
    let rankings: [Ranking; 5] = [
        (
            wants.urls,
            |w| w.urls = true,
            |from, to| to.urls = from.urls,
        ),
        (
            wants.agents,
            |w| w.agents = true,
            |from, to| to.agents = from.agents,
        ),
        (
            wants.referrers,
            |w| w.referrers = true,
            |from, to| to.referrers = from.referrers,
        ),
        (
            wants.methods,
            |w| w.methods = true,
            |from, to| to.methods = from.methods,
        ),
        // Not a ranking, but counted the same way: per URL and time.
        (
            wants.times,
            |w| w.times = true,
            |from, to| (to.times, to.url_times) = (from.times, from.url_times),
        ),
    ];
    for (wanted, want, take) in rankings {
        if wanted {
            let mut one = none;
            want(&mut one);
            take(
                grouped(tables, where_, query, (one, Per::Key), None)?,
                &mut counts,
            );
        }
    }
    let table = tables.logs();
    // The zone's days, only when visitors are counted.
    let day = match wants.visits {
        true => {
            let offset = offset_sql(tables, where_, &query.zone)?;
            floor_div(&format!("timestamp + {offset}"), 86_400)
        }
        false => String::new(),
    };
    // An absent agent counts as the log's `-`, as the counter counts it.
    let agent = "ifNull(user_agent, '-')";
    // Which requests make visitors (--visitors).
    let visiting = match wants.visitors {
        VisitorRule::All => where_.to_owned(),
        VisitorRule::Goaccess => format!("{where_} AND NOT (status >= 400 AND status < 500)"),
    };
    let rows = |sql: String| text_rows(tables, &sql);
    let number = |s: &str| -> anyhow::Result<u64> {
        s.parse()
            .map_err(|_| anyhow::anyhow!("{}: {s:?} is not a count", tables.client.address()))
    };
    if wants.visits {
        for row in rows(format!(
            "SELECT {day} AS d, uniqExact(ip, {agent}) FROM {table} WHERE {visiting} GROUP BY d"
        ))? {
            let n = number(&row[1])?;
            counts.days.push((row[0].parse()?, n));
            counts.visitors += n;
        }
        if wants.urls {
            let mut visitors = rustc_hash::FxHashMap::default();
            for row in rows(format!(
                "SELECT {url} AS u, uniqExact(ip, {day}, {agent}) FROM {table} WHERE {visiting} \
                 GROUP BY u"
            ))? {
                visitors.insert(row[0].clone(), number(&row[1])?);
            }
            for (url, stat) in &mut counts.urls {
                stat.visitors = visitors.get(&**url).copied().unwrap_or(0);
            }
        }
        if wants.agents {
            for row in rows(format!(
                "SELECT {agent} AS a, uniqExact(ip, {day}) FROM {table} WHERE {visiting} \
                 GROUP BY a"
            ))? {
                counts
                    .agent_visitors
                    .push((row[0].as_str().into(), number(&row[1])?));
            }
        }
    }
    if wants.visits || wants.clients {
        let distinct = rows(format!("SELECT uniqExact(ip) FROM {table} WHERE {where_}"))?;
        counts.distinct_clients = distinct.first().map_or(Ok(0), |r| number(&r[0]))?;
    }
    if wants.clients {
        // The ranking's own order (hits, then the client's text byte by byte, as ClickHouse
        // compares strings), so that the rows cut to --top are the ones shown.
        let limit = match wants.top {
            usize::MAX => String::new(),
            top => format!(" LIMIT {top}"),
        };
        for row in rows(format!(
            "SELECT ip, count() AS n FROM {table} WHERE {where_} GROUP BY ip \
             ORDER BY n DESC, ip ASC{limit}"
        ))? {
            counts
                .clients
                .push((row[0].as_str().into(), number(&row[1])?));
        }
    }
    Ok(counts)
}

/// Splits `line` into its TabSeparated fields, unescaped, and which are `\N`.
fn split_fields<const N: usize>(line: &[u8], fields: &mut [Vec<u8>; N]) -> Option<[bool; N]> {
    let mut absent = [false; N];
    let mut parts = line.split(|&b| b == b'\t');
    for (i, field) in fields.iter_mut().enumerate() {
        let raw = parts.next()?;
        field.clear();
        absent[i] = raw == b"\\N";
        if !absent[i] {
            tsv_unescape(raw, field);
        }
    }
    match parts.next() {
        Some(_) => None,
        None => Some(absent),
    }
}

/// Counts one group of the answer of [`grouped`]: whether it passed the filters, and its
/// hits.
fn group_of(
    line: &[u8],
    fields: &mut [Vec<u8>; 12],
    counter: &mut RowCounter<'_>,
) -> Option<(bool, u64)> {
    let absent = split_fields(line, fields)?;
    // The host's column first; the others as a group without it.
    let absent = &absent[1..];
    let fields = &fields[1..];
    let text = |i: usize| match absent[i] {
        true => None,
        false => std::str::from_utf8(&fields[i]).ok(),
    };
    let number = |i: usize| text(i).and_then(|t| t.parse::<i64>().ok());
    let group = Group {
        hits: u64::try_from(number(7)?).ok()?,
        bytes: text(8)?.parse().ok()?,
        first: number(9)?,
        last: number(10)?,
    };
    let row = Row {
        ip: text(0)?,
        timestamp: group.first,
        method: text(1),
        url: text(2).unwrap_or(""),
        status: u16::try_from(number(3)?).ok()?,
        bytes: Some(group.bytes),
        referrer: text(4),
        user_agent: text(5),
        response_time_us: match absent[6] {
            true => None,
            false => Some(text(6)?.parse().ok()?),
        },
    };
    Some((counter.add_group(&row, &group), group.hits))
}

/// Hands each line of the answer to `each`, until it returns false.
fn each_line(
    tables: &Tables,
    sql: &str,
    each: &mut dyn FnMut(&[u8]) -> bool,
) -> anyhow::Result<()> {
    let mut rest = Vec::new();
    let mut stopped = false;
    (tables.client)
        .stream(sql, &mut |chunk| {
            if stopped {
                return Ok(());
            }
            rest.extend_from_slice(chunk);
            let mut start = 0;
            while let Some(end) = memchr::memchr(b'\n', &rest[start..]) {
                let line = &rest[start..start + end];
                start += end + 1;
                if !each(line) {
                    stopped = true;
                    return Ok(());
                }
            }
            rest.drain(..start);
            Ok(())
        })
        .map_err(|e| failed(tables, e))
}

/// The counts from the entries themselves, read on this thread and counted on
/// `query.threads`.
fn entries(tables: &Tables, where_: &str, query: &Query) -> anyhow::Result<Counts> {
    let wants = query.wants();
    let needs = Needs::of(wants, &query.filters);
    // What no report asks for is not sent: the server gives a constant instead.
    let column = |name: &str, needed: bool, none: &str| match needed {
        true => format!("`{name}`"),
        false => none.to_owned(),
    };
    let sql = format!(
        "SELECT ip, timestamp, {}, {}, status, bytes, {}, {}, {} FROM {} WHERE {} \
         FORMAT TabSeparated",
        column("method", needs.method, "NULL"),
        column("url", needs.url, "''"),
        column("referrer", needs.referrer, "NULL"),
        column("user_agent", needs.agent, "NULL"),
        column("response_time_us", wants.times, "NULL"),
        tables.logs(),
        where_
    );
    let mut bad = None;
    let (read, results) = shard::fan_out(
        query.threads,
        4,
        |feed| {
            let mut block = super::RowBlock::default();
            let mut fields: [Vec<u8>; 9] = Default::default();
            let mut stopped = false;
            let mut number = 0u64;
            each_line(tables, &sql, &mut |line| {
                number += 1;
                let Some(full) = row_of(line, &mut fields, &mut block) else {
                    bad = Some(number);
                    stopped = true;
                    return false;
                };
                // Only a counting thread that panicked stops taking blocks; the join says so.
                if full && !feed.send(std::mem::take(&mut block)) {
                    stopped = true;
                    return false;
                }
                true
            })?;
            if !stopped {
                feed.send(block);
            }
            Ok(())
        },
        |share, blocks| super::count_share(share, blocks, query),
    )?;
    if let Some(n) = bad {
        bail!(
            "{}: row {n} of the answer is not what log-pipeline writes",
            tables.client.address()
        );
    }
    read?;
    Ok(super::add_up(results))
}

/// Reads one answer line into `block`: whether the block is full, or `None` if the line is not
/// 9 fields of the expected types.
fn row_of(line: &[u8], fields: &mut [Vec<u8>; 9], block: &mut super::RowBlock) -> Option<bool> {
    let absent = split_fields(line, fields)?;
    let text = |i: usize| match absent[i] {
        true => None,
        false => std::str::from_utf8(&fields[i]).ok(),
    };
    let int = |i: usize| text(i).and_then(|t| t.parse::<u64>().ok());
    let row = Row {
        ip: text(0)?,
        timestamp: text(1)?.parse().ok()?,
        method: text(2),
        url: text(3).unwrap_or(""),
        status: u16::try_from(int(4)?).ok()?,
        bytes: int(5),
        referrer: text(6),
        user_agent: text(7),
        response_time_us: int(8),
    };
    Some(block.push(&row))
}

/// The rejected lines of `hosts`, grouped by reason, with the first of each as the sample.
fn rejects(tables: &Tables, hosts: &[String]) -> anyhow::Result<Vec<RejectGroup>> {
    let answer = text_rows(
        tables,
        &format!(
            "SELECT reason, count(), argMin(source, (seq, line)), argMin(line, (seq, line)), \
             argMin(url, (seq, line)) FROM {} WHERE {} GROUP BY reason",
            tables.logs(),
            rows_of(Kind::Reject, hosts)
        ),
    )?;
    let mut groups: Vec<RejectGroup> = Vec::new();
    for row in answer {
        let [reason, lines, source, number, raw] = &row[..] else {
            bail!("{}: an unexpected answer", tables.client.address());
        };
        let reason = super::rejects::slug_of(reason);
        let lines: u64 = lines.parse()?;
        match groups.iter_mut().find(|g| g.reason == reason) {
            Some(group) => group.lines += lines,
            None => groups.push(RejectGroup {
                reason,
                lines,
                source: source.clone(),
                line: number.parse()?,
                sample: raw.clone(),
            }),
        }
    }
    Ok(groups)
}
