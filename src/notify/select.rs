//! Which sinks receive which of one Rollout's events (pure): the configuration's defaults (for
//! the sinks that serve the Rollout's namespace) and the Rollout's own `spec.notifications`; and
//! the condition `NotificationsConfigured` that tells the Rollout's owner what was found.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{NotifyConfig, list};
use crate::crd::rollout::{NotificationEvent, NotificationRef, RolloutStatus};

/// The condition type.
pub const CONDITION: &str = "NotificationsConfigured";
/// Its reason when every entry names a usable sink.
pub const FOUND: &str = "SinksFound";
/// Its reason when an entry names no usable sink.
pub const NOT_FOUND: &str = "SinkNotFound";

/// The events each sink (index into the configuration's sinks) receives, and what is wrong with
/// the Rollout's entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Sink index → its events.
    pub routes: BTreeMap<usize, BTreeSet<NotificationEvent>>,
    /// One message per entry of `spec.notifications` naming no usable sink.
    pub problems: Vec<String>,
}

impl Selection {
    /// The sinks (indices) that receive `event`.
    pub fn sinks_for(&self, event: NotificationEvent) -> impl Iterator<Item = usize> + '_ {
        self.routes
            .iter()
            .filter(move |(_, events)| events.contains(&event))
            .map(|(sink, _)| *sink)
    }
}

/// The selection for a Rollout in `namespace` whose `spec.notifications` is `wanted`.
pub fn select(config: &NotifyConfig, namespace: &str, wanted: &[NotificationRef]) -> Selection {
    let mut s = Selection::default();
    let mut add = |sink: usize, events: &[NotificationEvent]| {
        let set = s.routes.entry(sink).or_default();
        if events.is_empty() {
            set.extend(NotificationEvent::ALL);
        } else {
            set.extend(events.iter().copied());
        }
    };
    for d in &config.defaults {
        if let Some(i) = config.sinks.iter().position(|s| s.name == d.sink)
            && config.sinks[i].serves(namespace)
        {
            add(i, &d.events);
        }
    }
    let mut problems = Vec::new();
    for (n, r) in wanted.iter().enumerate() {
        match config.sinks.iter().position(|s| s.name == r.sink) {
            Some(i) if config.sinks[i].serves(namespace) => add(i, &r.events),
            Some(i) => problems.push(format!(
                "spec.notifications[{n}].sink: sink {:?} does not serve namespace {namespace:?} (it serves {}); choose another sink, or ask the cluster's operator to add {namespace:?} to its namespaces in {}",
                r.sink,
                list(config.sinks[i].namespaces.iter().map(String::as_str)),
                config.origin
            )),
            None => problems.push(format!(
                "spec.notifications[{n}].sink: no sink is named {:?} in {} (sinks: {}); correct the name, or ask the cluster's operator to add the sink",
                r.sink,
                config.origin,
                list(config.names())
            )),
        }
    }
    s.problems = problems;
    s
}

/// Sets `NotificationsConfigured` on `status` for a Rollout whose `spec.notifications` is
/// `wanted`: `True` naming where events go, `False` with each problem; removed when the Rollout
/// selects nothing (the cluster's defaults need no condition).
pub fn set_condition(
    status: &mut RolloutStatus,
    config: &NotifyConfig,
    wanted: &[NotificationRef],
    selection: &Selection,
    now: f64,
) {
    if wanted.is_empty() {
        status.conditions.retain(|c| c.type_ != CONDITION);
        return;
    }
    let (on, reason, message) = if selection.problems.is_empty() {
        let routes: Vec<String> = selection
            .routes
            .iter()
            .map(|(sink, events)| {
                let which = if events.len() == NotificationEvent::ALL.len() {
                    "all events".to_string()
                } else {
                    list(events.iter().map(|e| e.as_str()))
                };
                format!("{} ({which})", config.sinks[*sink].name)
            })
            .collect();
        (true, FOUND, format!("events go to {}", routes.join(", ")))
    } else {
        (false, NOT_FOUND, selection.problems.join("; "))
    };
    crate::controller::decide::set_condition(
        &mut status.conditions,
        CONDITION,
        on,
        reason,
        &message,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use NotificationEvent::*;

    fn config() -> NotifyConfig {
        NotifyConfig::parse(
            "sinks:\n\
             - name: audit\n  kind: webhook\n  url: https://audit.example/\n\
             - name: shop-oncall\n  kind: slack\n  url: https://hooks.slack.example/x\n  namespaces: [shop]\n\
             - name: teams\n  kind: teams\n  url: https://t.example/x\n\
             defaults:\n- sink: audit\n  events: [rolledBack]\n- sink: shop-oncall\n  events: [aborted]\n",
            "--notifications-config n.yaml",
        )
        .expect("valid")
    }

    fn wants(list: &[(&str, &[NotificationEvent])]) -> Vec<NotificationRef> {
        list.iter()
            .map(|(sink, events)| NotificationRef {
                sink: sink.to_string(),
                events: events.to_vec(),
            })
            .collect()
    }

    fn routes(s: &Selection) -> Vec<(usize, Vec<NotificationEvent>)> {
        s.routes
            .iter()
            .map(|(i, e)| (*i, e.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn defaults_and_the_rollouts_own_choices_add_up() {
        let c = config();
        // Nothing chosen: the defaults the namespace is served by.
        assert_eq!(routes(&select(&c, "pay", &[])), vec![(0, vec![RolledBack])]);
        assert_eq!(
            routes(&select(&c, "shop", &[])),
            vec![(0, vec![RolledBack]), (1, vec![Aborted])]
        );
        // Chosen events add to a default's; no events is all of them.
        let s = select(
            &c,
            "shop",
            &wants(&[
                ("audit", &[Promoted]),
                ("teams", &[]),
                ("shop-oncall", &[Held]),
            ]),
        );
        assert_eq!(
            routes(&s),
            vec![
                (0, vec![RolledBack, Promoted]),
                (1, vec![Held, Aborted]),
                (2, NotificationEvent::ALL.to_vec()),
            ]
        );
        assert!(s.problems.is_empty());
        assert_eq!(s.sinks_for(Held).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(s.sinks_for(Started).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn unknown_and_forbidden_sinks_are_named_with_the_fix() {
        let c = config();
        let s = select(
            &c,
            "pay",
            &wants(&[("slak", &[]), ("shop-oncall", &[]), ("teams", &[])]),
        );
        assert_eq!(
            s.problems,
            vec![
                "spec.notifications[0].sink: no sink is named \"slak\" in --notifications-config n.yaml (sinks: audit, shop-oncall, teams); correct the name, or ask the cluster's operator to add the sink".to_string(),
                "spec.notifications[1].sink: sink \"shop-oncall\" does not serve namespace \"pay\" (it serves shop); choose another sink, or ask the cluster's operator to add \"pay\" to its namespaces in --notifications-config n.yaml".to_string(),
            ]
        );
        // The good entry still delivers.
        assert_eq!(
            routes(&s),
            vec![(0, vec![RolledBack]), (2, NotificationEvent::ALL.to_vec())]
        );
    }

    #[test]
    fn the_condition_says_where_events_go_or_what_is_wrong() {
        let c = config();
        let mut status = RolloutStatus::default();
        let wanted = wants(&[("teams", &[]), ("audit", &[Promoted])]);
        set_condition(&mut status, &c, &wanted, &select(&c, "pay", &wanted), 1.0);
        let cond = &status.conditions[0];
        assert_eq!(
            (
                cond.type_.as_str(),
                cond.status.as_str(),
                cond.reason.as_str(),
                cond.message.as_str()
            ),
            (
                CONDITION,
                "True",
                FOUND,
                "events go to audit (rolledBack, promoted), teams (all events)"
            )
        );
        let wrong = wants(&[("slak", &[])]);
        set_condition(&mut status, &c, &wrong, &select(&c, "pay", &wrong), 2.0);
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[0].reason, NOT_FOUND);
        assert!(
            status.conditions[0]
                .message
                .starts_with("spec.notifications[0].sink: no sink is named \"slak\"")
        );
        // Choosing nothing removes it.
        set_condition(&mut status, &c, &[], &select(&c, "pay", &[]), 3.0);
        assert!(status.conditions.is_empty());
        // Without any configuration every name is unknown, and the message says why.
        let off = NotifyConfig::from_flag(None).expect("off");
        set_condition(&mut status, &off, &wrong, &select(&off, "pay", &wrong), 4.0);
        assert!(
            status.conditions[0].message.contains(
                "in the controller (started without --notifications-config) (sinks: none)"
            ),
            "{}",
            status.conditions[0].message
        );
    }
}
