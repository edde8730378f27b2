//! A string that holds a credential: a token, an API key or a password.

use std::fmt;

use zeroize::Zeroizing;

/// Credential text that cannot be printed.
///
/// `Debug` prints `[redacted]` and there is no `Display` or `Serialize`, so a
/// secret cannot reach a log line, an Event, status or an error message by
/// accident. The memory is zeroed on drop. Read the value only with
/// [`SecretString::expose`], at the place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// Returns the credential for sending it; never log or store the result.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Returns whether the credential is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_value() {
        let secret = SecretString::new("hunter2-token");
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(!printed.contains("hunter2"));
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn expose_returns_value() {
        assert_eq!(SecretString::new("abc").expose(), "abc");
    }
}
