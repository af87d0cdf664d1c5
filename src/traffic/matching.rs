//! A/B match conditions and weight arithmetic shared by the routers.

use super::{Split, TrafficError};

/// One A/B match of a split, validated: requests carrying it go to the canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Header `name` equals `value`.
    Header {
        /// Header name.
        name: &'a str,
        /// Exact value.
        value: &'a str,
    },
    /// Cookie `name` equals `value`.
    Cookie {
        /// Cookie name.
        name: &'a str,
        /// Exact value.
        value: &'a str,
    },
}

/// The split's matches as conditions, in the same order.
///
/// # Errors
/// `Unsupported` for a match that does not set exactly one of header or cookie, or whose name
/// or value cannot appear in a request.
pub fn conditions(split: &Split) -> Result<Vec<Condition<'_>>, TrafficError> {
    let mut out = Vec::with_capacity(split.matches.len());
    for (i, m) in split.matches.iter().enumerate() {
        let unsupported = |problem: String| TrafficError::Unsupported {
            field: format!("spec.trafficRouting.matches[{i}]"),
            problem,
        };
        let value = m.value.as_str();
        let (condition, what, name) = match (m.header.as_deref(), m.cookie.as_deref()) {
            (Some(name), None) => (Condition::Header { name, value }, "header", name),
            (None, Some(name)) => (Condition::Cookie { name, value }, "cookie", name),
            _ => return Err(unsupported("set exactly one of header or cookie".into())),
        };
        if !is_token(name) {
            return Err(unsupported(format!(
                "{what} name {name:?} is not a valid HTTP token; use letters, digits and \
                 !#$%&'*+-.^_`|~ only"
            )));
        }
        let valid_value = match condition {
            Condition::Header { .. } => value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80),
            // RFC 6265 cookie-octet: no whitespace, quote, comma, semicolon or backslash.
            Condition::Cookie { .. } => value
                .bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)),
        };
        if value.is_empty() || !valid_value {
            return Err(unsupported(format!(
                "the {what} {name} has value {value:?}, which no request can carry; set the \
                 exact value that selects the canary"
            )));
        }
        out.push(condition);
    }
    Ok(out)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `s` with the regular-expression metacharacters backslash-escaped (RE2, PCRE and POSIX ERE).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regular expression matching a `Cookie` header that carries cookie `name` with `value`.
///
/// It matches the whole header, as Envoy-based implementations require, and also works where a
/// regular expression need only match part of the header.
pub fn cookie_regex(name: &str, value: &str) -> String {
    format!(
        r"(^|.*;\s*){}={}(;.*|$)",
        regex_escape(name),
        regex_escape(value)
    )
}

/// The canary's share of `stable + canary` in percent, rounded; `None` without a positive total.
pub fn percent(stable: i64, canary: i64) -> Option<i32> {
    let (stable, canary) = (i128::from(stable), i128::from(canary));
    let total = stable + canary;
    if stable < 0 || canary < 0 || total == 0 {
        return None;
    }
    i32::try_from((canary * 200 + total) / (total * 2)).ok()
}
