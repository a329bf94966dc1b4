//! InfluxQL: the query language of `/query`. [`ast`] is the syntax tree.

pub mod ast;
