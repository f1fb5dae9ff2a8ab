//! Settings a function reads once at init from the environment that template.yaml gives it.

/// A setting that is missing or malformed; the function refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where settings come from: the process environment, or in tests the environment template.yaml
/// gives a function.
pub trait Vars {
    fn var(&self, name: &str) -> Option<String>;

    /// A variable that must be set and not blank.
    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match self.var(name) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(ConfigError::Missing(name)),
        }
    }

    /// A variable that must hold a positive whole number.
    fn positive(&self, name: &'static str) -> Result<u32, ConfigError> {
        let raw = self.required(name)?;
        raw.parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("{raw:?} is not a positive whole number"),
            })
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The process environment.
pub fn process_env() -> impl Vars {
    |name: &str| std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_missing_and_numbers_must_be_positive() {
        let vars = |name: &str| match name {
            "BLANK" => Some("  ".to_owned()),
            "ZERO" => Some("0".to_owned()),
            "TEN" => Some("10".to_owned()),
            _ => None,
        };
        assert!(matches!(
            vars.required("BLANK"),
            Err(ConfigError::Missing("BLANK"))
        ));
        assert!(matches!(
            vars.required("NONE"),
            Err(ConfigError::Missing("NONE"))
        ));
        assert!(matches!(
            vars.positive("ZERO"),
            Err(ConfigError::Invalid { .. })
        ));
        assert_eq!(vars.positive("TEN").unwrap(), 10);
    }
}
