//! The built-in request classes as a policy configuration names them: resolving a name to
//! its [`ClassId`] (with a suggestion for a typo) and priority lists of classes.
//!
//! One place for the rule "policies match the built-in classes; other labels are mapped to
//! them by the trace importer". It must not know any policy.

use super::config::PolicyError;
use crate::trace::{ClassId, BUILTIN_CLASSES};

/// Resolves a built-in class name; other labels must be mapped to these by the trace importer.
pub fn class_id(field: &str, name: &str) -> Result<ClassId, PolicyError> {
    BUILTIN_CLASSES.iter().position(|c| *c == name).map(|i| ClassId(i as u16)).ok_or_else(|| {
        PolicyError::new(
            field,
            format!(
                "unknown class {name:?}{} (policies match the built-in classes {})",
                crate::suggest::suggestion(name, &BUILTIN_CLASSES),
                BUILTIN_CLASSES.join(", ")
            ),
        )
    })
}

/// Class ranks from a priority list of built-in class names; unlisted classes go last.
pub fn class_ranks(field: &str, priority: &[String]) -> Result<Vec<u8>, PolicyError> {
    let mut ranks = vec![u8::MAX; BUILTIN_CLASSES.len()];
    for (i, name) in priority.iter().enumerate() {
        let id = class_id(&format!("{field}[{i}]"), name)?;
        ranks[usize::from(id.0)] = i as u8;
    }
    Ok(ranks)
}

pub fn rank_of(ranks: &[u8], class: ClassId) -> u8 {
    ranks.get(usize::from(class.0)).copied().unwrap_or(u8::MAX)
}

/// Every built-in class, most urgent first (the default priority of the queueing policies).
pub fn default_priority() -> Vec<String> {
    BUILTIN_CLASSES.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_ranks_follow_the_priority_list_and_reject_unknown_names() {
        let ranks = class_ranks("priority", &["bulk".into(), "interactive".into()]).unwrap();
        assert_eq!(rank_of(&ranks, ClassId::BULK), 0);
        assert_eq!(rank_of(&ranks, ClassId::INTERACTIVE), 1);
        assert_eq!(rank_of(&ranks, ClassId::ASYNC), u8::MAX);
        assert!(class_ranks("priority", &["interactve".into()])
            .unwrap_err()
            .to_string()
            .contains("did you mean \"interactive\""));
    }
}
