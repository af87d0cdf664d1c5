//! Placeholder; see the helper's work.
fn main() {}
