//! Durations as scenario files write them.

/// Durations written as `90s`, `2m`, `500ms` or a bare number of seconds.
pub mod duration_text {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    /// The longest duration a scenario may write: a day (a longer one is a typo, and would
    /// overflow when limits are added up).
    pub const MAX: Duration = Duration::from_secs(24 * 3600);

    /// `90s`, `2m`, `1h 30m`, `500ms` (humantime's forms), or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let duration = match text.parse::<f64>() {
            Ok(seconds) if seconds >= 0.0 => Duration::try_from_secs_f64(seconds)
                .map_err(|_| format!("expected a duration of at most 24h, got `{text}`"))?,
            Ok(_) => return Err(format!("expected a duration of zero or more, got `{text}`")),
            Err(_) => humantime::parse_duration(text)
                .map_err(|e| format!("expected a duration such as `90s`, `2m` or `500ms`, got `{text}` ({e})"))?,
        };
        if duration > MAX {
            return Err(format!("expected a duration of at most 24h, got `{text}`"));
        }
        Ok(duration)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl serde::de::Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as `90s`, `2m`, `500ms` or a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative")).and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
                parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format!("{}s", value.as_secs_f64()))
    }
}
