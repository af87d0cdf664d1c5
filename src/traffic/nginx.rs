//! NGINX Ingress router: a canary Ingress beside the stable one, with `canary-weight`,
//! `canary-by-header(-value)` and `canary-by-cookie` annotations.

use serde_json::{Map, Value, json};

use super::matching::{Condition, conditions, percent};
use super::{ObjectRef, Router, Split, TrafficError};

/// Marks an Ingress as the canary of the Ingress with the same host and path.
const CANARY: &str = "nginx.ingress.kubernetes.io/canary";
/// The canary's share of `canary-weight-total` (default 100).
const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";
/// What `canary-weight` is a share of.
const WEIGHT_TOTAL: &str = "nginx.ingress.kubernetes.io/canary-weight-total";
/// Header that sends a request to the canary.
const BY_HEADER: &str = "nginx.ingress.kubernetes.io/canary-by-header";
/// Value of that header that does.
const BY_HEADER_VALUE: &str = "nginx.ingress.kubernetes.io/canary-by-header-value";
/// Cookie that sends a request to the canary when its value is `always`.
const BY_COOKIE: &str = "nginx.ingress.kubernetes.io/canary-by-cookie";

/// Creates `<stable_ingress>-canary` from the stable Ingress and sets its canary annotations.
///
/// The canary Ingress copies the stable one's class, TLS, rules and default backend with the
/// stable Service replaced by the canary's, and carries only canary-gate's annotations: the
/// weight, and at most one header and one cookie (valued `always`) for A/B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryIngress {
    /// The stable Ingress (read, never written).
    pub stable_ingress: String,
    /// Service the stable Ingress routes to.
    pub stable_service: String,
    /// Service of the canary.
    pub canary_service: String,
}

impl Router for CanaryIngress {
    fn reads(&self) -> ObjectRef {
        ObjectRef {
            group: "networking.k8s.io",
            version: "v1",
            kind: "Ingress",
            plural: "ingresses",
            name: self.stable_ingress.clone(),
        }
    }

    fn writes(&self) -> ObjectRef {
        ObjectRef {
            name: format!("{}-canary", self.stable_ingress),
            ..self.reads()
        }
    }

    fn creates(&self) -> bool {
        true
    }

    fn desired(&self, read: &Value, split: &Split) -> Result<Value, TrafficError> {
        let annotations = annotations(split)?;
        let empty = Map::new();
        let stable = read
            .get("spec")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let present = |key: &str| stable.get(key).filter(|v| !v.is_null()).cloned();
        let mut spec = Map::new();
        let mut retargeted = 0;
        if let Some(class) = present("ingressClassName") {
            spec.insert("ingressClassName".into(), class);
        }
        if let Some(tls) = present("tls") {
            spec.insert("tls".into(), tls);
        }
        if let Some(mut rules) = present("rules") {
            for rule in rules.as_array_mut().into_iter().flatten() {
                let paths = rule
                    .pointer_mut("/http/paths")
                    .and_then(Value::as_array_mut);
                for path in paths.into_iter().flatten() {
                    if let Some(backend) = path.get_mut("backend") {
                        retargeted += usize::from(self.retarget(backend));
                    }
                }
            }
            spec.insert("rules".into(), rules);
        }
        if let Some(mut backend) = present("defaultBackend") {
            retargeted += usize::from(self.retarget(&mut backend));
            spec.insert("defaultBackend".into(), backend);
        }
        if retargeted == 0 {
            return Err(TrafficError::Unusable {
                object: self.reads().to_string(),
                problem: format!(
                    "no backend sends traffic to Service {stable}; route the paths whose traffic \
                     the rollout splits (or the defaultBackend) to Service {stable}",
                    stable = self.stable_service
                ),
            });
        }
        Ok(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": self.writes().name, "annotations": annotations},
            "spec": spec,
        }))
    }

    fn in_force(&self, written: &Value) -> Option<i32> {
        let annotations = written.pointer("/metadata/annotations")?;
        let number = |key: &str| -> Option<Option<i64>> {
            annotations
                .get(key)
                .map(|v| v.as_str().and_then(|s| s.trim().parse().ok()))
        };
        if annotations.get(CANARY).and_then(Value::as_str) != Some("true") {
            return None;
        }
        let total = number(WEIGHT_TOTAL).unwrap_or(Some(100))?;
        let weight = number(WEIGHT)??;
        if total <= 0 {
            return None;
        }
        // NGINX sends everything to the canary when the weight exceeds the total.
        let weight = weight.clamp(0, total);
        percent(total - weight, weight)
    }
}

impl CanaryIngress {
    /// Points `backend` at the canary Service if it names the stable one; whether it did.
    fn retarget(&self, backend: &mut Value) -> bool {
        match backend.pointer_mut("/service/name") {
            Some(name) if name.as_str() == Some(self.stable_service.as_str()) => {
                *name = self.canary_service.clone().into();
                true
            }
            _ => false,
        }
    }
}

/// The canary annotations for `split`.
fn annotations(split: &Split) -> Result<Map<String, Value>, TrafficError> {
    let mut out = Map::new();
    out.insert(CANARY.into(), "true".into());
    out.insert(WEIGHT.into(), split.weight.clamp(0, 100).to_string().into());
    let (mut header, mut cookie) = (None, None);
    for (i, c) in conditions(split)?.into_iter().enumerate() {
        let unsupported = |problem: String| TrafficError::Unsupported {
            field: format!("spec.trafficRouting.matches[{i}]"),
            problem,
        };
        match c {
            Condition::Header { name, value } => {
                if let Some(first) = header {
                    return Err(unsupported(format!(
                        "NGINX Ingress routes on one header only, and matches[{first}] already \
                         is a header match; keep a single header match (Istio and the Gateway \
                         API support several)"
                    )));
                }
                header = Some(i);
                out.insert(BY_HEADER.into(), name.into());
                out.insert(BY_HEADER_VALUE.into(), value.into());
            }
            Condition::Cookie { name, value } => {
                if let Some(first) = cookie {
                    return Err(unsupported(format!(
                        "NGINX Ingress routes on one cookie only, and matches[{first}] already \
                         is a cookie match; keep a single cookie match (Istio and the Gateway \
                         API support several)"
                    )));
                }
                if value != "always" {
                    return Err(unsupported(format!(
                        "NGINX Ingress sends a request to the canary by cookie only when the \
                         cookie's value is \"always\", not {value:?}; set value: always, or use a \
                         header match"
                    )));
                }
                cookie = Some(i);
                out.insert(BY_COOKIE.into(), name.into());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::RouteMatch;

    fn router() -> CanaryIngress {
        CanaryIngress {
            stable_ingress: "web".into(),
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

    fn path(prefix: &str, service: &str, port: Value) -> Value {
        json!({"path": prefix, "pathType": "Prefix",
               "backend": {"service": {"name": service, "port": port}}})
    }

    fn tls() -> Value {
        json!([{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])
    }

    /// The stable Ingress: `/` to the stable Service, `/static` to another one.
    fn read() -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
            },
            "spec": {
                "ingressClassName": "nginx",
                "tls": tls(),
                "rules": [{"host": "shop.example.com", "http": {"paths": [
                    path("/", "web-stable", json!({"number": 80})),
                    path("/static", "assets", json!({"name": "http"})),
                ]}}],
            },
            "status": {"loadBalancer": {}},
        })
    }

    fn body(annotations: Value) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web-canary", "annotations": annotations},
            "spec": {
                "ingressClassName": "nginx",
                "tls": tls(),
                "rules": [{"host": "shop.example.com", "http": {"paths": [
                    path("/", "web-canary", json!({"number": 80})),
                    path("/static", "assets", json!({"name": "http"})),
                ]}}],
            },
        })
    }

    #[test]
    fn copies_the_stable_ingress_to_the_canary_service_with_the_weight() {
        for w in [0, 5, 50, 100] {
            let body = router().desired(&read(), &split(w, vec![])).unwrap();
            let expected = self::body(json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": w.to_string(),
            }));
            assert_eq!(body, expected, "weight {w}");
            assert_eq!(router().in_force(&body), Some(w));
            // The stable Ingress is never written: the same read gives the same body.
            assert_eq!(router().desired(&read(), &split(w, vec![])), Ok(body));
        }
    }

    #[test]
    fn header_and_cookie_matches_become_canary_annotations() {
        let ab = split(
            10,
            vec![header("x-canary", "yes"), cookie("beta", "always")],
        );
        let body = router().desired(&read(), &ab).unwrap();
        assert_eq!(
            body,
            self::body(json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10",
                "nginx.ingress.kubernetes.io/canary-by-header": "x-canary",
                "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
                "nginx.ingress.kubernetes.io/canary-by-cookie": "beta",
            }))
        );
        assert_eq!(router().in_force(&body), Some(10));

        let rollback = router().desired(&read(), &split(0, vec![])).unwrap();
        assert_eq!(
            rollback["metadata"]["annotations"],
            json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "0",
            })
        );
    }

    #[test]
    fn the_default_backend_is_retargeted_too() {
        let backend = |name: &str| json!({"service": {"name": name, "port": {"number": 80}}});
        let read = json!({"spec": {"defaultBackend": backend("web-stable")}});
        let body = router().desired(&read, &split(5, vec![])).unwrap();
        assert_eq!(
            body["spec"],
            json!({"defaultBackend": backend("web-canary")})
        );
    }

    #[test]
    fn an_ingress_without_the_stable_service_is_unusable() {
        let mut read = read();
        read["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "web".into();
        for read in [read, json!({"kind": "Ingress"})] {
            let err = router().desired(&read, &split(5, vec![])).unwrap_err();
            assert_eq!(
                err.to_string(),
                "Ingress web: no backend sends traffic to Service web-stable; route the paths \
                 whose traffic the rollout splits (or the defaultBackend) to Service web-stable"
            );
        }
    }

    #[test]
    fn matches_nginx_cannot_express_are_unsupported() {
        let unsupported =
            |matches: Vec<RouteMatch>| match router().desired(&read(), &split(5, matches)) {
                Err(TrafficError::Unsupported { field, problem }) => format!("{field}: {problem}"),
                other => panic!("expected Unsupported, got {other:?}"),
            };
        assert_eq!(
            unsupported(vec![cookie("beta", "yes")]),
            "spec.trafficRouting.matches[0]: NGINX Ingress sends a request to the canary by \
             cookie only when the cookie's value is \"always\", not \"yes\"; set value: always, \
             or use a header match"
        );
        assert_eq!(
            unsupported(vec![
                header("x-a", "1"),
                cookie("beta", "always"),
                header("x-b", "2")
            ]),
            "spec.trafficRouting.matches[2]: NGINX Ingress routes on one header only, and \
             matches[0] already is a header match; keep a single header match (Istio and the \
             Gateway API support several)"
        );
        assert_eq!(
            unsupported(vec![cookie("a", "always"), cookie("b", "always")]),
            "spec.trafficRouting.matches[1]: NGINX Ingress routes on one cookie only, and \
             matches[0] already is a cookie match; keep a single cookie match (Istio and the \
             Gateway API support several)"
        );
    }

    #[test]
    fn in_force_parses_the_weight_annotation() {
        let written = |annotations: Value| json!({"metadata": {"annotations": annotations}});
        assert_eq!(
            router().in_force(&written(json!({CANARY: "true", WEIGHT: "25"}))),
            Some(25)
        );
        assert_eq!(
            router().in_force(&written(
                json!({CANARY: "true", WEIGHT: "3", WEIGHT_TOTAL: "12"})
            )),
            Some(25)
        );
        assert_eq!(
            router().in_force(&written(json!({CANARY: "true", WEIGHT: "250"}))),
            Some(100)
        );
        assert_eq!(
            router().in_force(&written(json!({CANARY: "true", WEIGHT: "lots"}))),
            None
        );
        assert_eq!(
            router().in_force(&written(json!({CANARY: "false", WEIGHT: "25"}))),
            None
        );
        assert_eq!(router().in_force(&written(json!({CANARY: "true"}))), None);
        assert_eq!(router().in_force(&json!({})), None);
    }
}
