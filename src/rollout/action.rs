//! The human actions on a Rollout: one vocabulary for the CLI that asks (`canary-gate promote`,
//! …) and the controller that acts — the annotation, its values and the words.

/// The annotation a human (or `canary-gate promote|abort|retry|undo`) sets on a Rollout. Its
/// value is `promote`, `promote-full`, `abort`, `retry` or `undo`, optionally followed by `@` and
/// anything unique (so the same action can be asked twice); the controller acts once per
/// distinct value.
pub const ACTION_ANNOTATION: &str = "canarygate.dev/action";

/// A human's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// End the current pause or hold and go to the next step.
    Promote,
    /// Skip every remaining step.
    PromoteFull,
    /// Send all traffic back to stable and stop until `Retry`.
    Abort,
    /// Start an aborted or rolled-back revision again from the first step.
    Retry,
    /// Put the target Deployment back on the stable revision's template (during a rollout), or
    /// on the previous stable revision's (after a promotion), like `kubectl rollout undo`.
    Undo,
}

/// An annotation value that names no action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "annotation {ACTION_ANNOTATION}={0:?}: use promote, promote-full, abort, retry or undo (optionally followed by @ and anything unique)"
)]
pub struct UnknownAction(pub String);

impl Action {
    /// The annotation's word for it (`promote-full`).
    pub fn verb(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::PromoteFull => "promote-full",
            Action::Abort => "abort",
            Action::Retry => "retry",
            Action::Undo => "undo",
        }
    }

    /// How a human asks for it (`promote --full`), for messages.
    pub fn command(self) -> &'static str {
        match self {
            Action::PromoteFull => "promote --full",
            other => other.verb(),
        }
    }

    /// The action an annotation value asks for (`promote@1` is `Promote`).
    ///
    /// # Errors
    /// When the value names no action.
    pub fn parse(value: &str) -> Result<Self, UnknownAction> {
        match value.split('@').next().unwrap_or_default() {
            "promote" => Ok(Action::Promote),
            "promote-full" => Ok(Action::PromoteFull),
            "abort" => Ok(Action::Abort),
            "retry" => Ok(Action::Retry),
            "undo" => Ok(Action::Undo),
            other => Err(UnknownAction(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_reads_back_from_its_annotation_value() {
        for a in [
            Action::Promote,
            Action::PromoteFull,
            Action::Abort,
            Action::Retry,
            Action::Undo,
        ] {
            assert_eq!(Action::parse(&format!("{}@17", a.verb())), Ok(a));
            assert_eq!(Action::parse(a.verb()), Ok(a));
        }
        assert_eq!(Action::PromoteFull.command(), "promote --full");
        assert!(
            Action::parse("promot")
                .unwrap_err()
                .to_string()
                .contains("use promote, promote-full, abort, retry or undo")
        );
    }
}
