//! The generic webhook's signature: HMAC-SHA256 (`ring`, already compiled in for TLS) with the
//! sink's signing key over `<timestamp>.<body>` — the exact bytes of the body — sent with the
//! timestamp so a receiver can refuse replays.
//!
//! Headers of every webhook POST:
//! - `X-Canary-Gate-Event`: the event (`rolledBack`, …);
//! - `X-Canary-Gate-Delivery`: the notice's id (the same in every retry);
//! - `X-Canary-Gate-Timestamp`: unix seconds when this attempt was sent;
//! - `X-Canary-Gate-Signature`: `sha256=` and 64 lowercase hex digits of
//!   HMAC-SHA256(key, `<timestamp>.<body>`) — only with a signing key.
//!
//! A receiver recomputes the HMAC over the timestamp header, a `.` and the raw body it received
//! (before any JSON parsing), compares in constant time, and refuses timestamps more than a few
//! minutes from its clock.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// Header with the event name.
pub const EVENT_HEADER: &str = "x-canary-gate-event";
/// Header with the notice's id.
pub const DELIVERY_HEADER: &str = "x-canary-gate-delivery";
/// Header with the unix time of the attempt.
pub const TIMESTAMP_HEADER: &str = "x-canary-gate-timestamp";
/// Header with `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-canary-gate-signature";

/// A signing key, ready to sign (its bytes are not kept anywhere printable).
#[derive(Clone)]
pub struct SigningKey(ring::hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl SigningKey {
    /// A key from its text (the bytes of the string, as a receiver would hold it).
    pub fn new(secret: &str) -> Self {
        Self(ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            secret.as_bytes(),
        ))
    }

    /// `sha256=<hex of HMAC-SHA256(key, "<timestamp>.<body>")>`.
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.0);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("sha256={}", hex(ctx.sign().as_ref()))
    }
}

/// The webhook's headers for one attempt at `timestamp`: event, delivery id, timestamp and —
/// with a key — the signature over the exact `body`.
pub fn headers(
    event: &str,
    id: &str,
    timestamp: u64,
    body: &[u8],
    key: Option<&SigningKey>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), value);
        }
    };
    put(EVENT_HEADER, event.to_string());
    put(DELIVERY_HEADER, id.to_string());
    put(TIMESTAMP_HEADER, timestamp.to_string());
    if let Some(key) = key {
        put(SIGNATURE_HEADER, key.sign(timestamp, body));
    }
    h
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test cases 2 and 1: the published HMAC-SHA-256 values of the primitive the
    /// signature uses.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 1: key 20 × 0x0b, "Hi There".
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0x0b; 20]);
        assert_eq!(
            hex(ring::hmac::sign(&key, b"Hi There").as_ref()),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let key = SigningKey::new("Jefe");
        // "12.x" signed directly must equal sign(12, "x").
        let direct = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe"),
            b"12.x",
        );
        assert_eq!(
            key.sign(12, b"x"),
            format!("sha256={}", hex(direct.as_ref()))
        );
        assert_ne!(key.sign(13, b"x"), key.sign(12, b"x"));
        assert_ne!(key.sign(12, b"y"), key.sign(12, b"x"));
        assert_eq!(format!("{key:?}"), "***");
    }

    #[test]
    fn headers_without_a_key_are_unsigned() {
        let h = headers("rolledBack", "abc", 12, b"{}", None);
        assert_eq!(
            h.get(EVENT_HEADER).and_then(|v| v.to_str().ok()),
            Some("rolledBack")
        );
        assert_eq!(
            h.get(DELIVERY_HEADER).and_then(|v| v.to_str().ok()),
            Some("abc")
        );
        assert_eq!(
            h.get(TIMESTAMP_HEADER).and_then(|v| v.to_str().ok()),
            Some("12")
        );
        assert!(h.get(SIGNATURE_HEADER).is_none());
        let signed = headers("rolledBack", "abc", 12, b"{}", Some(&SigningKey::new("k")));
        assert_eq!(
            signed.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()),
            Some(SigningKey::new("k").sign(12, b"{}").as_str())
        );
    }
}
