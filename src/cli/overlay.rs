//! Laying optional flags over a config (a file's, or the defaults): a flag replaces a value
//! only when it was given, and the flags given are named, so a command that cannot use them
//! (`train --resume`) refuses them instead of ignoring them.

/// The flags given so far, while they are laid over a config. Flags are named by their clap
/// field (`max_samples_per_feature` is `--max-samples-per-feature`).
#[derive(Debug, Default)]
pub struct Given {
    fields: Vec<&'static str>,
}

impl Given {
    /// `field`'s value, if given, replaces `slot`.
    pub fn set<T: Clone>(&mut self, field: &'static str, value: &Option<T>, slot: &mut T) {
        if let Some(value) = value {
            *slot = value.clone();
            self.fields.push(field);
        }
    }

    /// `field`'s value, if given, replaces an optional `slot`.
    pub fn set_some<T: Clone>(
        &mut self,
        field: &'static str,
        value: &Option<T>,
        slot: &mut Option<T>,
    ) {
        if let Some(value) = value {
            *slot = Some(value.clone());
            self.fields.push(field);
        }
    }

    /// A switch (`--no-dedup`): when on, `slot` takes `value`.
    pub fn switch(&mut self, field: &'static str, on: bool, slot: &mut bool, value: bool) {
        if on {
            *slot = value;
            self.fields.push(field);
        }
    }

    /// The flags given, as typed (`--max-samples-per-feature`), in the order laid over.
    pub fn into_flags(self) -> Vec<String> {
        self.fields
            .iter()
            .map(|field| format!("--{}", field.replace('_', "-")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_flags_replace_values_and_are_named() {
        let (mut a, mut b, mut c, mut d) = (1, 2, Some(3.0), true);
        let mut given = Given::default();
        given.set("top_k", &Some(10), &mut a);
        given.set("b", &None, &mut b);
        given.set_some("c", &None, &mut c);
        given.switch("no_dedup", true, &mut d, false);
        assert_eq!((a, b, c, d), (10, 2, Some(3.0), false));
        assert_eq!(given.into_flags(), vec!["--top-k", "--no-dedup"]);
    }
}
