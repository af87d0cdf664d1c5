//! Where a placeholder lands in PromQL (a lexer over the template's query) and how a value is
//! escaped there: quoted strings, regex matchers, raw strings, or bare tokens (see the parent
//! module's documentation).

/// Where in PromQL a placeholder lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Outside any string: a metric or label name, a duration, a number, a function name.
    Bare,
    /// Inside a string quoted with `quote` (`"`, `'` or `` ` ``); `regex` when the string is
    /// the value of a `=~` or `!~` matcher; `after_backslash` when the character before the
    /// placeholder is an unfinished backslash escape.
    Quoted {
        /// The quote character.
        quote: char,
        /// The string is a regex matcher's value.
        regex: bool,
        /// An unfinished `\` escape precedes the placeholder.
        after_backslash: bool,
    },
}

/// A small PromQL lexer that knows only what matters for placing values: strings (with their
/// escapes), whether a string follows a regex matcher operator, and comments.
#[derive(Debug, Default)]
pub(super) struct Lexer {
    /// Inside a string: its quote, whether it is a regex, whether a `\` is pending.
    string: Option<(char, bool, bool)>,
    /// Inside a `#` comment (until the end of the line).
    comment: bool,
    /// The last two non-blank characters outside strings.
    last: [char; 2],
}

impl Lexer {
    pub(super) fn feed(&mut self, text: &str) {
        for c in text.chars() {
            match &mut self.string {
                Some((quote, _, escaped)) => {
                    if *escaped {
                        *escaped = false;
                    } else if c == '\\' && *quote != '`' {
                        *escaped = true;
                    } else if c == *quote {
                        self.string = None;
                        self.last = [self.last[1], c];
                    }
                }
                None if self.comment => self.comment = c != '\n',
                None => match c {
                    '"' | '\'' | '`' => {
                        let regex = matches!(self.last, ['=' | '!', '~']);
                        self.string = Some((c, regex, false));
                    }
                    '#' => self.comment = true,
                    c if c.is_whitespace() => {}
                    c => self.last = [self.last[1], c],
                },
            }
        }
    }

    /// A value was placed: outside strings it is a token like any other.
    pub(super) fn placeholder(&mut self) {
        match &mut self.string {
            Some(_) => {}
            None if self.comment => {}
            None => self.last = [self.last[1], 'x'],
        }
    }

    pub(super) fn context(&self) -> Context {
        match self.string {
            Some((quote, regex, after_backslash)) => Context::Quoted {
                quote,
                regex,
                after_backslash,
            },
            None => Context::Bare,
        }
    }
}

/// Why a value cannot be placed.
pub(super) enum Unsafe {
    AfterBackslash,
    Refused(String),
}

/// PromQL words a bare value may not be.
pub(super) const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
];

/// A value escaped for `context` (see the module documentation); `raw_regex` for arguments
/// declared `regex: true`.
pub(super) fn escape_value(
    value: &str,
    context: Context,
    raw_regex: bool,
) -> Result<String, Unsafe> {
    match context {
        Context::Bare => {
            if value.is_empty() {
                Err(Unsafe::Refused(
                    "is empty where a PromQL token is expected".into(),
                ))
            } else if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))
                || KEYWORDS.contains(&value.to_ascii_lowercase().as_str())
            {
                Err(Unsafe::Refused(
                    "lands outside a quoted string, where only a plain token (letters, digits, '_', ':', '.'; not a PromQL keyword) is allowed; give a plain value, or quote the placeholder in the template (label=\"{{args.NAME}}\")".into(),
                ))
            } else {
                Ok(value.to_string())
            }
        }
        Context::Quoted {
            after_backslash: true,
            ..
        } => Err(Unsafe::AfterBackslash),
        Context::Quoted { quote, regex, .. } => {
            let value = if regex && !raw_regex {
                regex_escape(value)
            } else {
                value.to_string()
            };
            if quote == '`' {
                if value.contains('`') {
                    return Err(Unsafe::Refused(
                        "contains a backtick and lands in a `raw string`, which cannot escape it; use a \"quoted\" string in the template".into(),
                    ));
                }
                return Ok(value);
            }
            Ok(string_escape(&value, quote))
        }
    }
}

/// Escapes text for a PromQL string quoted with `quote` (`"` or `'`).
pub fn string_escape(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes every regex metacharacter (RE2 syntax, as Prometheus uses), so the text matches
/// itself literally.
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
