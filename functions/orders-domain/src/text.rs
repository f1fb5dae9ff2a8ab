//! Validated text values: one macro gives each the same shape (`as_str`, `Display`, serde through
//! `String`, validated on the way in by the type's own `parse`).

/// Declares `pub struct $name(String)` whose only constructor is `$name::parse`, which the type
/// defines itself with its own rule.
macro_rules! text_value {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::DomainError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use text_value;

/// Text a person wrote for a person to read: trimmed, 1 to `max` characters, no control
/// characters; `None` otherwise.
pub(crate) fn display_text(raw: &str, max: usize) -> Option<String> {
    let trimmed = raw.trim();
    let count = trimmed.chars().count();
    ((1..=max).contains(&count) && !trimmed.chars().any(char::is_control))
        .then(|| trimmed.to_owned())
}
