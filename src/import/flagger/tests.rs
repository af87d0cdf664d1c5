//! Unit tests of the Flagger import.
