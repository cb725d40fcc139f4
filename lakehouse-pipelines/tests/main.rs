//! Integration tests of the reference lakehouse (one test binary, modules by topic).

mod cli;
mod graph;
mod lakehouse;
mod opendata;
mod units;
mod walkthrough;
