//! Time as the project writes it: unix seconds (`f64`) in the analysis and the step machine,
//! RFC 3339 in statuses and requests — one codec for both directions, and the clock.

/// Now, unix seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Unix seconds as RFC 3339 (whole seconds, UTC); times before 1970 are written as 1970.
pub fn rfc3339(t: f64) -> String {
    let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0.0) as u64);
    humantime::format_rfc3339_seconds(st).to_string()
}

/// RFC 3339 as unix seconds; `None` for text that is not RFC 3339 or lies before 1970.
pub fn parse_rfc3339(text: &str) -> Option<f64> {
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_whole_seconds() {
        assert_eq!(rfc3339(1_763_856_000.7), "2025-11-23T00:00:00Z");
        assert_eq!(parse_rfc3339("2025-11-23T00:00:00Z"), Some(1_763_856_000.0));
        assert_eq!(
            parse_rfc3339("2025-11-23T00:00:00.5Z"),
            Some(1_763_856_000.5)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(rfc3339(-5.0), "1970-01-01T00:00:00Z");
        assert!(now() > 1_700_000_000.0);
    }
}
