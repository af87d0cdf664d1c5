//! Argo Rollouts' `successCondition` / `failureCondition` (expr-lang over `result`) read as limits
//! on the measured value: comparisons of `result`, `result[0]`, `asFloat(…)` or `default(…, n)`
//! with a number, joined by `&&`; `isNaN(result[0]) || …` and `len(result) == 0 || …` are read
//! without their no-data half (canary-gate holds on missing data and never passes it). Anything
//! else is not understood, and the caller reports the metric as not carried over. Whether a bound
//! is strict (`<` or `<=`) is not kept: canary-gate's limits include the bound.

/// Limits on a value: it passes when `min <= value <= max` (absent: unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Smallest passing value.
    pub min: Option<f64>,
    /// Largest passing value.
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(String),
    Open,
    Close,
    LBracket,
    RBracket,
    Comma,
}

fn lex(text: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.'
                    || chars[i] == 'e'
                    || ((chars[i] == '-' || chars[i] == '+') && chars[i - 1] == 'e'))
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Tok::Num(s.parse().ok()?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "and" => Tok::Op("&&".into()),
                "or" => Tok::Op("||".into()),
                _ => Tok::Ident(word),
            });
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["&&", "||", ">=", "<=", "==", "!="].contains(&two.as_str()) {
                out.push(Tok::Op(two));
                i += 2;
                continue;
            }
            out.push(match c {
                '>' | '<' | '-' => Tok::Op(c.to_string()),
                '(' => Tok::Open,
                ')' => Tok::Close,
                '[' => Tok::LBracket,
                ']' => Tok::RBracket,
                ',' => Tok::Comma,
                _ => return None,
            });
            i += 1;
        }
    }
    Some(out)
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

/// One side of a comparison.
enum Term {
    Value,
    Num(f64),
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expect(&mut self, t: &Tok) -> Option<()> {
        (self.next()? == *t).then_some(())
    }

    /// `result`, `result[0]`, `asFloat(v)`, `float(v)`, `default(v, n)`.
    fn value(&mut self) -> Option<()> {
        match self.next()? {
            Tok::Ident(w) if w == "result" => {
                if self.peek() == Some(&Tok::LBracket) {
                    self.next();
                    if self.next()? != Tok::Num(0.0) {
                        return None;
                    }
                    self.expect(&Tok::RBracket)?;
                }
                Some(())
            }
            Tok::Ident(w) if w == "asFloat" || w == "float" => {
                self.expect(&Tok::Open)?;
                self.value()?;
                self.expect(&Tok::Close)
            }
            Tok::Ident(w) if w == "default" => {
                self.expect(&Tok::Open)?;
                self.value()?;
                self.expect(&Tok::Comma)?;
                self.number()?;
                self.expect(&Tok::Close)
            }
            _ => None,
        }
    }

    fn number(&mut self) -> Option<f64> {
        match self.next()? {
            Tok::Num(n) => Some(n),
            Tok::Op(o) if o == "-" => match self.next()? {
                Tok::Num(n) => Some(-n),
                _ => None,
            },
            _ => None,
        }
    }

    fn term(&mut self) -> Option<Term> {
        match self.peek()? {
            Tok::Num(_) | Tok::Op(_) => self.number().map(Term::Num),
            _ => self.value().map(|()| Term::Value),
        }
    }

    /// A no-data test (`isNaN(v)`, `len(result) == 0`): true when it was one.
    fn no_data_test(&mut self) -> bool {
        let start = self.at;
        let ok = match self.next() {
            Some(Tok::Ident(w)) if w == "isNaN" => {
                self.expect(&Tok::Open).is_some()
                    && self.value().is_some()
                    && self.expect(&Tok::Close).is_some()
            }
            Some(Tok::Ident(w)) if w == "len" => {
                self.expect(&Tok::Open).is_some()
                    && matches!(self.next(), Some(Tok::Ident(r)) if r == "result")
                    && self.expect(&Tok::Close).is_some()
                    && self.next() == Some(Tok::Op("==".into()))
                    && self.next() == Some(Tok::Num(0.0))
            }
            _ => false,
        };
        if !ok {
            self.at = start;
        }
        ok
    }

    /// One comparison, as limits on the value.
    fn comparison(&mut self) -> Option<Limits> {
        if self.peek() == Some(&Tok::Open) {
            self.next();
            let inner = self.conjunction()?;
            self.expect(&Tok::Close)?;
            return Some(inner);
        }
        let lhs = self.term()?;
        let Tok::Op(op) = self.next()? else {
            return None;
        };
        let rhs = self.term()?;
        let (op, n) = match (lhs, rhs) {
            (Term::Value, Term::Num(n)) => (op, n),
            // `0.95 <= result` is `result >= 0.95`.
            (Term::Num(n), Term::Value) => (
                match op.as_str() {
                    ">" => "<".into(),
                    ">=" => "<=".into(),
                    "<" => ">".into(),
                    "<=" => ">=".into(),
                    _ => return None,
                },
                n,
            ),
            _ => return None,
        };
        match op.as_str() {
            ">" | ">=" => Some(Limits {
                min: Some(n),
                max: None,
            }),
            "<" | "<=" => Some(Limits {
                min: None,
                max: Some(n),
            }),
            _ => None,
        }
    }

    fn conjunction(&mut self) -> Option<Limits> {
        // `isNaN(result[0]) || <comparison>`: the no-data half is dropped.
        if self.no_data_test() && self.next()? != Tok::Op("||".into()) {
            return None;
        }
        let mut limits = self.comparison()?;
        while self.peek() == Some(&Tok::Op("&&".into())) {
            self.next();
            let more = self.comparison()?;
            limits.min = max_opt(limits.min, more.min, f64::max);
            limits.max = max_opt(limits.max, more.max, f64::min);
        }
        Some(limits)
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// The values a condition holds for, or `None` when it is not a conjunction of comparisons of
/// the result with numbers.
pub fn parse(condition: &str) -> Option<Limits> {
    let mut p = Parser {
        toks: lex(condition)?,
        at: 0,
    };
    let limits = p.conjunction()?;
    (p.at == p.toks.len()).then_some(limits)
}

/// The passing values given Argo's success and failure conditions: a measurement fails when the
/// failure condition holds, or when the success condition does not. With both, only the failure
/// condition fails (Argo calls the values in between inconclusive); a failure condition must be
/// one-sided (its complement is then one range). `None` when neither can be read.
pub fn passing(success: Option<&str>, failure: Option<&str>) -> Result<Limits, String> {
    if let Some(f) = failure {
        let l = parse(f).ok_or_else(|| format!("failureCondition {f:?} is not understood"))?;
        return match (l.min, l.max) {
            (Some(lo), None) => Ok(Limits {
                min: None,
                max: Some(lo),
            }),
            (None, Some(hi)) => Ok(Limits {
                min: Some(hi),
                max: None,
            }),
            _ => Err(format!(
                "failureCondition {f:?} fails on both sides of a range; canary-gate's limits are one range of passing values"
            )),
        };
    }
    match success {
        Some(s) => parse(s).ok_or_else(|| format!("successCondition {s:?} is not understood")),
        None => Err("has neither successCondition nor failureCondition, so it never fails".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(min: Option<f64>, max: Option<f64>) -> Option<Limits> {
        Some(Limits { min, max })
    }

    #[test]
    fn comparisons_of_the_result_become_limits() {
        assert_eq!(parse("result[0] >= 0.95"), limits(Some(0.95), None));
        assert_eq!(parse("result < 0.5"), limits(None, Some(0.5)));
        assert_eq!(parse("0.9 <= asFloat(result[0])"), limits(Some(0.9), None));
        assert_eq!(
            parse("result[0] >= 0.9 && result[0] <= 1"),
            limits(Some(0.9), Some(1.0))
        );
        assert_eq!(
            parse("isNaN(result[0]) || result[0] >= 0.95"),
            limits(Some(0.95), None)
        );
        assert_eq!(
            parse("len(result) == 0 || default(result[0], 0) < 10"),
            limits(None, Some(10.0))
        );
        assert_eq!(parse("result[0] > -1e-3"), limits(Some(-0.001), None));
    }

    #[test]
    fn anything_else_is_not_understood() {
        for c in [
            "result == 1",
            "result.verdict == \"pass\"",
            "result[1] > 2",
            "result[0] > 1 || result[0] < 0",
            "all(result, {# < 5})",
            "result[0] >= 0.9 extra",
        ] {
            assert_eq!(parse(c), None, "{c}");
        }
    }

    #[test]
    fn a_failure_condition_fails_where_it_holds() {
        assert_eq!(
            passing(None, Some("result[0] > 0.1")).unwrap(),
            Limits {
                min: None,
                max: Some(0.1)
            }
        );
        assert_eq!(
            passing(Some("result[0] >= 0.99"), Some("result[0] < 0.9")).unwrap(),
            Limits {
                min: Some(0.9),
                max: None
            }
        );
        assert!(passing(None, None).unwrap_err().contains("never fails"));
        assert!(passing(None, Some("result > 1 && result < 2")).is_err());
    }
}
