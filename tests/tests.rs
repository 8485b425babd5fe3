//! Integration tests: each module runs the real binaries in a temporary directory of its own.

mod workdir;

mod test_aggregate;
mod test_args;
mod test_clickhouse;
mod test_exactly_once;
mod test_follow;
mod test_formats;
mod test_generate;
mod test_goaccess;
mod test_html;
mod test_layout;
mod test_model;
mod test_nginx;
mod test_parse;
mod test_privacy;
mod test_real_logs;
mod test_serve;
mod test_suite;
