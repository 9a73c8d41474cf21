//! Where a host keeps its async events: the `--event-store` setting.

/// Where async events are stored (`--event-store`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EventStoreLocation {
    /// `events.db` in the data directory.
    #[default]
    DataDir,
    /// `sqlite:PATH`: an SQLite file of this host's own.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database shared with other hosts (a `postgres://` URL
    /// or libpq's `key=value` form).
    Postgres(String),
}

impl EventStoreLocation {
    /// Parses `--event-store`: `sqlite:PATH`, `postgres://...`,
    /// `postgresql://...`, or `key=value ...` (libpq's form).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("`sqlite:` needs a path, e.g. sqlite:/var/lib/fnhost/events.db".into());
            }
            return Ok(Self::Sqlite(path.into()));
        }
        let is_url = s.starts_with("postgres://") || s.starts_with("postgresql://");
        let is_pairs = !s.contains("://") && s.contains('=');
        if is_url || is_pairs {
            super::postgres::parse_url(s).map_err(|e| e.to_string())?;
            return Ok(Self::Postgres(s.to_string()));
        }
        Err(format!(
            "unknown event store \"{}\": use sqlite:PATH, postgres://..., or libpq's key=value form",
            redact(s)
        ))
    }

    /// A database URL that carries a password.
    pub fn has_password(&self) -> bool {
        matches!(self, Self::Postgres(url) if redact(url) != *url)
    }

    /// How the store is named in messages: a path, or a URL without its
    /// password.
    pub fn describe(&self, data_dir: &std::path::Path) -> String {
        match self {
            Self::DataDir => data_dir.join("events.db").display().to_string(),
            Self::Sqlite(p) => p.display().to_string(),
            Self::Postgres(url) => redact(url),
        }
    }
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((user_pass, host)) = auth.rsplit_once('@') {
            if let Some((user, _)) = user_pass.split_once(':') {
                return redact_pairs(&format!("{scheme}://{user}:***@{host}{tail}"));
            }
        }
        return redact_pairs(url);
    }
    redact_pairs(url)
}

/// `password=...` (in a key=value string or a URL query) replaced.
fn redact_pairs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("password=") {
        let (head, tail) = rest.split_at(i + "password=".len());
        out.push_str(head);
        out.push_str("***");
        let end = tail.find([' ', '&']).unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_of_the_setting_is_recognised_and_others_are_named() {
        assert_eq!(
            EventStoreLocation::parse("sqlite:/var/lib/fnhost/events.db"),
            Ok(EventStoreLocation::Sqlite(
                "/var/lib/fnhost/events.db".into()
            ))
        );
        for url in [
            "postgres://fnhost@db/fnhost",
            "postgresql:///fnhost?host=/run/postgresql",
            "host=/run/postgresql dbname=fnhost user=fnhost",
        ] {
            assert_eq!(
                EventStoreLocation::parse(url),
                Ok(EventStoreLocation::Postgres(url.into())),
                "{url}"
            );
        }
        let err = EventStoreLocation::parse("mysql://root:hunter2@db/x").unwrap_err();
        assert!(err.contains("unknown event store"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the password is not repeated: {err}"
        );
        assert!(EventStoreLocation::parse("sqlite:").is_err());
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        let dir = std::path::Path::new("/d");
        for (url, shown) in [
            (
                "postgres://fnhost:s3cret@db:5432/fnhost?sslmode=disable",
                "postgres://fnhost:***@db:5432/fnhost?sslmode=disable",
            ),
            (
                "postgresql:///fnhost?host=/run&password=s3cret&user=u",
                "postgresql:///fnhost?host=/run&password=***&user=u",
            ),
            (
                "host=/run dbname=fnhost password=s3cret user=u",
                "host=/run dbname=fnhost password=*** user=u",
            ),
        ] {
            let location = EventStoreLocation::Postgres(url.into());
            assert_eq!(location.describe(dir), shown);
        }
        assert_eq!(EventStoreLocation::DataDir.describe(dir), "/d/events.db");
        assert!(EventStoreLocation::Postgres("postgres://u:p@h/d".into()).has_password());
        assert!(!EventStoreLocation::Postgres("postgres://u@h/d".into()).has_password());
    }
}
