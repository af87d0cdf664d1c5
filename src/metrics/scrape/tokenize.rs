//! The strict tokenizer every sample line must pass: names, quoted labels, value, timestamp.

/// One sample line as the tokenizer reads it.
pub(super) struct TokenizedSample<'a> {
    pub(super) name: &'a str,
    pub(super) labels: Vec<(String, String)>,
    pub(super) value: f64,
}

fn is_name_start(b: u8, colon: bool) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || (colon && b == b':')
}

fn is_name_char(b: u8, colon: bool) -> bool {
    is_name_start(b, colon) || b.is_ascii_digit()
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Reads `name[{label="value",…}] value [timestamp] [# exemplar]`.
pub(super) fn tokenize_sample(line: &str) -> Result<TokenizedSample<'_>, String> {
    let bytes = line.as_bytes();
    let len = bytes.len();
    let mut i = 0;
    let skip_blanks = |i: &mut usize| {
        while *i < len && is_blank(bytes[*i]) {
            *i += 1;
        }
    };

    if i >= len || !is_name_start(bytes[i], true) {
        return Err("expected a metric name".to_string());
    }
    while i < len && is_name_char(bytes[i], true) {
        i += 1;
    }
    let name = &line[..i];
    let after_name = i;
    skip_blanks(&mut i);

    let mut labels: Vec<(String, String)> = Vec::new();
    if i >= len || bytes[i] != b'{' {
        i = after_name;
    } else {
        i += 1;
        loop {
            skip_blanks(&mut i);
            if i < len && bytes[i] == b'}' {
                i += 1;
                break;
            }
            let start = i;
            if i >= len || !is_name_start(bytes[i], false) {
                return Err("expected a label name or '}'".to_string());
            }
            while i < len && is_name_char(bytes[i], false) {
                i += 1;
            }
            let label = &line[start..i];
            skip_blanks(&mut i);
            if i >= len || bytes[i] != b'=' {
                return Err(format!("expected '=' after label {label}"));
            }
            i += 1;
            skip_blanks(&mut i);
            if i >= len || bytes[i] != b'"' {
                return Err(format!("expected '\"' to open the value of label {label}"));
            }
            i += 1;
            let mut value = String::new();
            let mut segment = i;
            loop {
                if i >= len {
                    return Err(format!("unterminated value of label {label}"));
                }
                match bytes[i] {
                    b'"' => {
                        value.push_str(&line[segment..i]);
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        value.push_str(&line[segment..i]);
                        match bytes.get(i + 1) {
                            Some(b'\\') => value.push('\\'),
                            Some(b'"') => value.push('"'),
                            Some(b'n') => value.push('\n'),
                            _ => {
                                return Err(format!(
                                    "invalid escape in the value of label {label}"
                                ));
                            }
                        }
                        i += 2;
                        segment = i;
                    }
                    _ => i += 1,
                }
            }
            if labels.iter().any(|(l, _)| l == label) {
                return Err(format!("label {label} appears twice"));
            }
            labels.push((label.to_string(), value));
            skip_blanks(&mut i);
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err("expected ',' or '}' after a label".to_string()),
            }
        }
    }

    let before_value = i;
    skip_blanks(&mut i);
    if i == before_value && i < len {
        return Err("expected a blank before the value".to_string());
    }
    let start = i;
    while i < len && !is_blank(bytes[i]) {
        i += 1;
    }
    if start == i {
        return Err("missing value".to_string());
    }
    let value = parse_float(&line[start..i])
        .map_err(|_| format!("value {:?} is not a number", &line[start..i]))?;
    skip_blanks(&mut i);
    if i < len && bytes[i] != b'#' {
        let start = i;
        while i < len && !is_blank(bytes[i]) {
            i += 1;
        }
        let ts = &line[start..i];
        if parse_float(ts).map(f64::is_finite) != Ok(true) {
            return Err(format!("timestamp {ts:?} is not a number"));
        }
        skip_blanks(&mut i);
        if i < len && bytes[i] != b'#' {
            return Err(format!(
                "unexpected text {:?} after the timestamp",
                &line[i..]
            ));
        }
    }
    // Anything from `#` on is an OpenMetrics exemplar, ignored.
    Ok(TokenizedSample {
        name,
        labels,
        value,
    })
}

/// Parses a value as Go's `strconv.ParseFloat` writes them in expositions.
pub(super) fn parse_float(text: &str) -> Result<f64, ()> {
    match text.to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        other => {
            if other.is_empty()
                || !other
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
            {
                return Err(());
            }
            other.parse::<f64>().map_err(|_| ())
        }
    }
}
