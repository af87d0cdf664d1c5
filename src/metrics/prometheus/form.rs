//! The `application/x-www-form-urlencoded` body carrying the PromQL and its parameters.

/// Appends `key=value` to an `application/x-www-form-urlencoded` body.
pub(super) fn form_append(out: &mut String, key: &str, value: &str) {
    if !out.is_empty() {
        out.push('&');
    }
    form_encode(out, key);
    out.push('=');
    form_encode(out, value);
}

fn form_encode(out: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(other >> 4)] as char);
                out.push(HEX[usize::from(other & 0xf)] as char);
            }
        }
    }
}

/// A number as Prometheus parses it (`1700000000`, `1700000000.5`, `15`).
pub(super) fn format_number(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_promql() {
        let mut out = String::new();
        form_append(
            &mut out,
            "query",
            r#"sum(rate(x{code=~"5.."}[1m])) / 2 + a&b"#,
        );
        form_append(&mut out, "time", "1.5");
        assert_eq!(
            out,
            "query=sum%28rate%28x%7Bcode%3D%7E%225..%22%7D%5B1m%5D%29%29+%2F+2+%2B+a%26b&time=1.5"
        );
    }
}
