//! Spelling suggestions for names in user input ("did you mean …?"): unknown deployments,
//! presets, policy kinds, provenance parts. Shared by the scenario, policy and provenance
//! configuration.

/// `; did you mean "x"?` for the closest known name within a small edit distance.
pub fn suggestion(name: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!("; did you mean {k:?}?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(
            suggestion("anthropic/sonet", &["anthropic/sonnet", "openai/gpt-5"]),
            "; did you mean \"anthropic/sonnet\"?"
        );
        assert_eq!(suggestion("zzz", &["anthropic/sonnet"]), "");
    }
}
