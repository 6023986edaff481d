//! Environment variables as trainlog reads them: the first of several names that is set to
//! something other than blanks (an empty `MLFLOW_TRACKING_URI=` counts as unset).

/// The first of `vars` that is set to something other than blanks.
pub(crate) fn first_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
}
