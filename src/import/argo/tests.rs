//! Unit tests of the Argo Rollouts import.
