//! Shared by the integration tests.

/// FET's smallest example school of the tests (2 days × 3 hours, 4 activities).
pub const TINY: &str = include_str!("../data/tiny.fet");

/// The tiny school with `constraints` (FET XML) added to its time constraints.
pub fn tiny_with(constraints: &str) -> String {
    TINY.replace(
        "</Time_Constraints_List>",
        &format!("{constraints}</Time_Constraints_List>"),
    )
}
