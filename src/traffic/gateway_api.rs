//! Gateway API router: backendRef weights on an `HTTPRoute`, header and cookie matches for A/B.

use serde_json::{Map, Value, json};

use super::matching::{Condition, conditions, cookie_regex, percent};
use super::{ObjectRef, Router, Split, TrafficError};

/// Weights the stable and canary Services on the rules of an HTTPRoute.
///
/// Every rule whose backendRefs name either Service gets exactly `[stable, canary]`, weighted
/// `100 - w` and `w`; with A/B matches, a rule right after it sends the requests that match (its
/// own matches plus a header condition) to the canary alone. Other rules are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// HTTPRoute name.
    pub route: String,
    /// Service of the stable version.
    pub stable_service: String,
    /// Service of the canary.
    pub canary_service: String,
}

impl Router for HttpRoute {
    fn reads(&self) -> ObjectRef {
        ObjectRef {
            group: "gateway.networking.k8s.io",
            version: "v1",
            kind: "HTTPRoute",
            plural: "httproutes",
            name: self.route.clone(),
        }
    }

    fn desired(&self, read: &Value, split: &Split) -> Result<Value, TrafficError> {
        let conditions = conditions(split)?;
        let weight = i64::from(split.weight.clamp(0, 100));
        let mut rules = Vec::new();
        let mut weighted = 0;
        for (i, rule) in rules_of(read).iter().enumerate() {
            if self.is_ab_rule(rule) {
                continue;
            }
            if !self.is_weighted(rule) {
                rules.push(rule.clone());
                continue;
            }
            weighted += 1;
            let (stable, canary) = self.weighted_refs(i, rule, weight)?;
            let mut out = rule.as_object().cloned().unwrap_or_default();
            out.insert("backendRefs".into(), json!([stable, canary]));
            rules.push(Value::Object(out.clone()));
            if !conditions.is_empty() {
                rules.push(ab_rule(out, &canary, &conditions));
            }
        }
        if weighted == 0 {
            return Err(TrafficError::Unusable {
                object: self.reads().to_string(),
                problem: format!(
                    "no rule sends traffic to Service {stable}; add a backendRef \
                     {{name: {stable}, port: <port>}} to the rule whose traffic the rollout splits",
                    stable = self.stable_service
                ),
            });
        }
        Ok(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": self.route},
            "spec": {"rules": rules},
        }))
    }

    fn in_force(&self, written: &Value) -> Option<i32> {
        let rule = rules_of(written)
            .iter()
            .find(|r| !self.is_ab_rule(r) && self.is_weighted(r))?;
        let weight_of = |service: &str| {
            backend_refs(rule)
                .iter()
                .find(|r| is_service(r, service))
                .map_or(0, |r| r.get("weight").and_then(Value::as_i64).unwrap_or(1))
        };
        percent(
            weight_of(&self.stable_service),
            weight_of(&self.canary_service),
        )
    }
}

impl HttpRoute {
    /// A rule canary-gate added for A/B: only the canary Service, matched on headers.
    fn is_ab_rule(&self, rule: &Value) -> bool {
        let refs = backend_refs(rule);
        refs.len() == 1
            && is_service(&refs[0], &self.canary_service)
            && rule
                .get("matches")
                .and_then(Value::as_array)
                .is_some_and(|ms| {
                    ms.iter().any(|m| {
                        m.get("headers")
                            .and_then(Value::as_array)
                            .is_some_and(|h| !h.is_empty())
                    })
                })
    }

    fn is_weighted(&self, rule: &Value) -> bool {
        backend_refs(rule)
            .iter()
            .any(|r| is_service(r, &self.stable_service) || is_service(r, &self.canary_service))
    }

    /// The stable and canary refs of weighted rule `i`, weighted.
    fn weighted_refs(
        &self,
        i: usize,
        rule: &Value,
        weight: i64,
    ) -> Result<(Value, Value), TrafficError> {
        let (mut stable, mut canary) = (None, None);
        for r in backend_refs(rule) {
            if is_service(r, &self.stable_service) {
                stable.get_or_insert(r);
            } else if is_service(r, &self.canary_service) {
                canary.get_or_insert(r);
            } else {
                return Err(TrafficError::Unusable {
                    object: self.reads().to_string(),
                    problem: format!(
                        "spec.rules[{i}] sends traffic to {} besides Services {} and {}; a rule \
                         whose traffic canary-gate splits must send traffic only to these two \
                         Services: move the other backendRefs to a rule of their own",
                        describe(r),
                        self.stable_service,
                        self.canary_service
                    ),
                });
            }
        }
        let stable_ref = stable
            .cloned()
            .unwrap_or_else(|| new_ref(&self.stable_service, canary));
        let canary_ref = canary
            .cloned()
            .unwrap_or_else(|| new_ref(&self.canary_service, stable));
        Ok((
            with_weight(stable_ref, 100 - weight),
            with_weight(canary_ref, weight),
        ))
    }
}

/// The A/B rule following a weighted rule: the weighted rule's other fields (filters,
/// timeouts…), every one of its matches (or an empty one) combined with every condition, and
/// the canary alone.
fn ab_rule(mut rule: Map<String, Value>, canary: &Value, conditions: &[Condition<'_>]) -> Value {
    let own = rule
        .get("matches")
        .and_then(Value::as_array)
        .filter(|ms| !ms.is_empty())
        .cloned()
        .unwrap_or_else(|| vec![json!({})]);
    let matches: Vec<Value> = own
        .iter()
        .flat_map(|m| conditions.iter().map(move |c| with_header(m, c)))
        .collect();
    rule.remove("name");
    rule.insert("matches".into(), Value::Array(matches));
    rule.insert(
        "backendRefs".into(),
        json!([with_weight(canary.clone(), 1)]),
    );
    Value::Object(rule)
}

/// `m` with the header condition for `c` appended to its headers.
fn with_header(m: &Value, c: &Condition<'_>) -> Value {
    let mut m = m.as_object().cloned().unwrap_or_default();
    let mut headers = m
        .get("headers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    headers.push(match *c {
        Condition::Header { name, value } => {
            json!({"type": "Exact", "name": name, "value": value})
        }
        Condition::Cookie { name, value } => json!({
            "type": "RegularExpression",
            "name": "Cookie",
            "value": cookie_regex(name, value),
        }),
    });
    m.insert("headers".into(), Value::Array(headers));
    Value::Object(m)
}

fn rules_of(route: &Value) -> &[Value] {
    route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn backend_refs(rule: &Value) -> &[Value] {
    rule.get("backendRefs")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether backendRef `r` is the core Service `name`.
fn is_service(r: &Value, name: &str) -> bool {
    let core = match r.get("group") {
        None | Some(Value::Null) => true,
        Some(g) => g.as_str() == Some(""),
    };
    let service = match r.get("kind") {
        None | Some(Value::Null) => true,
        Some(k) => k.as_str() == Some("Service"),
    };
    core && service && r.get("name").and_then(Value::as_str) == Some(name)
}

fn describe(r: &Value) -> String {
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("Service");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("<unnamed>");
    format!("{kind} {name}")
}

/// A backendRef to Service `name`, on the port of `like` if it has one.
fn new_ref(name: &str, like: Option<&Value>) -> Value {
    let mut r = Map::new();
    r.insert("name".into(), name.into());
    if let Some(port) = like.and_then(|l| l.get("port")) {
        r.insert("port".into(), port.clone());
    }
    Value::Object(r)
}

fn with_weight(mut r: Value, weight: i64) -> Value {
    if let Value::Object(m) = &mut r {
        m.insert("weight".into(), weight.into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::RouteMatch;
    use crate::traffic::matching::regex_escape;

    fn router() -> HttpRoute {
        HttpRoute {
            route: "web".into(),
            stable_service: "web-stable".into(),
            canary_service: "web-canary".into(),
        }
    }

    fn split(weight: i32, matches: Vec<RouteMatch>) -> Split {
        Split {
            weight,
            matches,
            stable_revision: "5d9f8c7b6".into(),
            canary_revision: Some("7c6b5a4d3".into()),
        }
    }

    fn header(name: &str, value: &str) -> RouteMatch {
        RouteMatch {
            header: Some(name.into()),
            cookie: None,
            value: value.into(),
        }
    }

    fn cookie(name: &str, value: &str) -> RouteMatch {
        RouteMatch {
            header: None,
            cookie: Some(name.into()),
            value: value.into(),
        }
    }

    /// An HTTPRoute as read, with these rules.
    fn route(rules: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "4711"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "hostnames": ["shop.example.com"],
                "rules": rules,
            },
        })
    }

    /// The apply body with these rules.
    fn body(rules: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "web"},
            "spec": {"rules": rules},
        })
    }

    /// `read` after applying `body` (the rules list is atomic: replaced whole).
    fn applied(read: &Value, body: &Value) -> Value {
        let mut out = read.clone();
        out["spec"]["rules"] = body["spec"]["rules"].clone();
        out
    }

    fn api_match() -> Value {
        json!({"path": {"type": "PathPrefix", "value": "/api"}})
    }

    fn assets_rule() -> Value {
        json!({
            "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
            "backendRefs": [{"name": "assets", "port": 80}],
        })
    }

    /// The user's route: `/api` to the stable Service (with a filter), `/static` elsewhere.
    fn read() -> Value {
        route(json!([
            {
                "matches": [api_match()],
                "filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"set": [{"name": "x-via", "value": "gw"}]}}],
                "backendRefs": [{"name": "web-stable", "port": 8080}],
            },
            assets_rule(),
        ]))
    }

    fn filters() -> Value {
        json!([{"type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x-via", "value": "gw"}]}}])
    }

    fn weighted(stable: i64, canary: i64) -> Value {
        json!({
            "matches": [api_match()],
            "filters": filters(),
            "backendRefs": [
                {"name": "web-stable", "port": 8080, "weight": stable},
                {"name": "web-canary", "port": 8080, "weight": canary},
            ],
        })
    }

    #[test]
    fn weights_the_stable_and_canary_services_and_keeps_other_rules() {
        for w in [0, 5, 50, 100] {
            let body = router().desired(&read(), &split(w, vec![])).unwrap();
            let expected = self::body(json!([
                weighted(100 - i64::from(w), i64::from(w)),
                assets_rule()
            ]));
            assert_eq!(body, expected, "weight {w}");
            assert_eq!(router().in_force(&applied(&read(), &body)), Some(w));
        }
    }

    #[test]
    fn keeps_the_existing_canary_ref_and_adds_a_missing_stable_ref_on_its_port() {
        let read =
            route(json!([{"backendRefs": [{"name": "web-canary", "port": 9090, "weight": 3}]}]));
        let body = router().desired(&read, &split(20, vec![])).unwrap();
        assert_eq!(
            body,
            self::body(json!([{"backendRefs": [
                {"name": "web-stable", "port": 9090, "weight": 80},
                {"name": "web-canary", "port": 9090, "weight": 20},
            ]}]))
        );
    }

    #[test]
    fn header_match_adds_a_canary_rule_after_the_weighted_rule() {
        let body = router()
            .desired(&read(), &split(10, vec![header("x-canary", "yes")]))
            .unwrap();
        let mut ab = api_match();
        ab["headers"] = json!([{"type": "Exact", "name": "x-canary", "value": "yes"}]);
        assert_eq!(
            body,
            self::body(json!([
                weighted(90, 10),
                {
                    "matches": [ab],
                    "filters": filters(),
                    "backendRefs": [{"name": "web-canary", "port": 8080, "weight": 1}],
                },
                assets_rule(),
            ]))
        );
        assert_eq!(router().in_force(&applied(&read(), &body)), Some(10));
    }

    #[test]
    fn cookie_and_header_matches_combine_with_every_match_of_the_rule() {
        let read = route(json!([{
            "matches": [
                api_match(),
                {"path": {"type": "Exact", "value": "/"},
                 "headers": [{"name": "x-app", "value": "1"}]},
            ],
            "backendRefs": [{"name": "web-stable", "port": 8080}],
        }]));
        let body = router()
            .desired(
                &read,
                &split(
                    0,
                    vec![cookie("beta.user", "a+b"), header("x-canary", "yes")],
                ),
            )
            .unwrap();
        let cookie = json!({"type": "RegularExpression", "name": "Cookie",
                            "value": r"(^|.*;\s*)beta\.user=a\+b(;.*|$)"});
        let header = json!({"type": "Exact", "name": "x-canary", "value": "yes"});
        let root =
            |headers: Value| json!({"path": {"type": "Exact", "value": "/"}, "headers": headers});
        let api =
            |h: &Value| json!({"path": {"type": "PathPrefix", "value": "/api"}, "headers": [h]});
        let app = json!({"name": "x-app", "value": "1"});
        assert_eq!(
            body,
            self::body(json!([
                {
                    "matches": [api_match(), root(json!([app]))],
                    "backendRefs": [
                        {"name": "web-stable", "port": 8080, "weight": 100},
                        {"name": "web-canary", "port": 8080, "weight": 0},
                    ],
                },
                {
                    "matches": [
                        api(&cookie),
                        api(&header),
                        root(json!([app, cookie])),
                        root(json!([app, header])),
                    ],
                    "backendRefs": [{"name": "web-canary", "port": 8080, "weight": 1}],
                },
            ]))
        );
    }

    #[test]
    fn a_rule_without_matches_gets_an_ab_rule_with_only_the_header() {
        let read = route(json!([{"backendRefs": [{"name": "web-stable", "port": 80}]}]));
        let body = router()
            .desired(&read, &split(50, vec![header("x-canary", "yes")]))
            .unwrap();
        assert_eq!(
            body["spec"]["rules"][1],
            json!({
                "matches": [{"headers": [{"type": "Exact", "name": "x-canary", "value": "yes"}]}],
                "backendRefs": [{"name": "web-canary", "port": 80, "weight": 1}],
            })
        );
    }

    #[test]
    fn desired_is_idempotent_and_rollback_removes_the_ab_rules() {
        let ab = split(30, vec![header("x-canary", "yes"), cookie("beta", "on")]);
        let first = router().desired(&read(), &ab).unwrap();
        let again = router().desired(&applied(&read(), &first), &ab).unwrap();
        assert_eq!(again, first);

        let rollback = router()
            .desired(&applied(&read(), &first), &split(0, vec![]))
            .unwrap();
        assert_eq!(rollback, body(json!([weighted(100, 0), assets_rule()])));
        assert_eq!(router().in_force(&applied(&read(), &rollback)), Some(0));
    }

    #[test]
    fn in_force_reads_the_first_weighted_rule_in_percent() {
        let written = route(json!([
            assets_rule(),
            {"backendRefs": [
                {"name": "web-stable", "weight": 2},
                {"name": "web-canary", "weight": 1},
            ]},
            {"backendRefs": [
                {"name": "web-stable", "weight": 0},
                {"name": "web-canary", "weight": 1},
            ]},
        ]));
        assert_eq!(router().in_force(&written), Some(33));
        // Gateway API's default weight is 1.
        let even =
            route(json!([{"backendRefs": [{"name": "web-stable"}, {"name": "web-canary"}]}]));
        assert_eq!(router().in_force(&even), Some(50));
        assert_eq!(router().in_force(&route(json!([assets_rule()]))), None);
        assert_eq!(router().in_force(&json!({"spec": "nonsense"})), None);
    }

    #[test]
    fn a_route_without_the_stable_service_is_unusable() {
        for read in [route(json!([assets_rule()])), json!({"kind": "HTTPRoute"})] {
            let err = router().desired(&read, &split(10, vec![])).unwrap_err();
            assert_eq!(
                err.to_string(),
                "HTTPRoute web: no rule sends traffic to Service web-stable; add a backendRef \
                 {name: web-stable, port: <port>} to the rule whose traffic the rollout splits"
            );
        }
    }

    #[test]
    fn a_weighted_rule_with_other_backends_is_unusable() {
        let read = route(json!([
            assets_rule(),
            {"backendRefs": [{"name": "web-stable", "port": 80}, {"name": "legacy", "port": 80}]},
        ]));
        let err = router().desired(&read, &split(10, vec![])).unwrap_err();
        assert_eq!(
            err,
            TrafficError::Unusable {
                object: "HTTPRoute web".into(),
                problem: "spec.rules[1] sends traffic to Service legacy besides Services \
                          web-stable and web-canary; a rule whose traffic canary-gate splits must \
                          send traffic only to these two Services: move the other backendRefs to \
                          a rule of their own"
                    .into(),
            }
        );
    }

    #[test]
    fn invalid_matches_are_unsupported() {
        let both = RouteMatch {
            header: Some("x".into()),
            cookie: Some("y".into()),
            value: "1".into(),
        };
        let err = router()
            .desired(&read(), &split(10, vec![header("x-canary", "yes"), both]))
            .unwrap_err();
        assert_eq!(
            err,
            TrafficError::Unsupported {
                field: "spec.trafficRouting.matches[1]".into(),
                problem: "set exactly one of header or cookie".into(),
            }
        );
        let err = router()
            .desired(&read(), &split(10, vec![cookie("beta", "a;b")]))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.trafficRouting.matches[0]: the cookie beta")
        );
        let err = router()
            .desired(&read(), &split(10, vec![header("x canary", "yes")]))
            .unwrap_err();
        assert!(err.to_string().contains("not a valid HTTP token"));
    }

    #[test]
    fn regex_escape_escapes_every_metacharacter() {
        assert_eq!(
            regex_escape(r"a.b+c*?()|[]{}^$\z-_"),
            r"a\.b\+c\*\?\(\)\|\[\]\{\}\^\$\\z-_"
        );
        assert_eq!(cookie_regex("id", "1.0"), r"(^|.*;\s*)id=1\.0(;.*|$)");
    }

    #[test]
    fn percent_rounds_and_rejects_nonsense() {
        assert_eq!(percent(95, 5), Some(5));
        assert_eq!(percent(1, 1), Some(50));
        assert_eq!(percent(2, 1), Some(33));
        assert_eq!(percent(1, 2), Some(67));
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(-1, 5), None);
        assert_eq!(percent(i64::MAX, i64::MAX), Some(50));
    }
}
