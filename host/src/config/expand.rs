//! Text of a `worker.config.json` as the Azure Functions host reads it:
//! `arguments` entries split the way a shell would, and the placeholders
//! Core Tools' shipped configs put in their paths.

/// What the placeholders in a worker's paths stand for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholders {
    /// `%FUNCTIONS_WORKER_RUNTIME_VERSION%`, when a version is known.
    pub runtime_version: Option<String>,
    /// `{os}`: `LINUX`, `OSX` or `WINDOWS`, as the Azure host spells them.
    pub os: &'static str,
    /// `{architecture}`: `X64`, `Arm64`, `X86` or `Arm`, as the Azure host
    /// spells them (.NET's `RuntimeInformation.ProcessArchitecture`).
    pub architecture: &'static str,
}

const VERSION_PLACEHOLDER: &str = "%FUNCTIONS_WORKER_RUNTIME_VERSION%";

impl Placeholders {
    /// The values for the machine fnhost runs on.
    pub fn this_machine(runtime_version: Option<String>) -> Self {
        let os = match std::env::consts::OS {
            "macos" => "OSX",
            "windows" => "WINDOWS",
            _ => "LINUX",
        };
        let architecture = match std::env::consts::ARCH {
            "aarch64" => "Arm64",
            "x86" => "X86",
            "arm" => "Arm",
            _ => "X64",
        };
        Self {
            runtime_version,
            os,
            architecture,
        }
    }

    /// `text` with its placeholders replaced; an error names a placeholder
    /// that has no value.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = text.replace("{os}", self.os);
        out = out.replace("{architecture}", self.architecture);
        if out.contains(VERSION_PLACEHOLDER) {
            let Some(v) = &self.runtime_version else {
                return Err(format!(
                    "\"{text}\" uses {VERSION_PLACEHOLDER} but no version is known: set \
                     FUNCTIONS_WORKER_RUNTIME_VERSION (local.settings.json Values or the \
                     environment) or description.defaultRuntimeVersion"
                ));
            };
            out = out.replace(VERSION_PLACEHOLDER, v);
        }
        Ok(out)
    }
}

/// Splits one `arguments` entry into words as a POSIX shell would, without
/// expansions: blanks separate words, `'…'` keeps everything literally,
/// `"…"` keeps blanks (a backslash escapes `"`, `\`, `$` and `` ` `` in it),
/// and a backslash outside quotes escapes the next character.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once something was written to it, even `''`.
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated ' in \"{text}\"")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated \" in \"{text}\"")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated \" in \"{text}\"")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("a trailing \\ in \"{text}\" escapes nothing")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        split_words(text).unwrap()
    }

    #[test]
    fn blanks_separate_arguments() {
        assert_eq!(split("-X no_debug_ranges"), ["-X", "no_debug_ranges"]);
        assert_eq!(split("  -m\tworker  "), ["-m", "worker"]);
        assert_eq!(split("--inspect"), ["--inspect"]);
        assert!(split("   ").is_empty());
        assert!(split("").is_empty());
    }

    #[test]
    fn quotes_keep_blanks_and_can_be_empty() {
        assert_eq!(
            split(r#"--path "/opt/my worker" 'a b'"#),
            ["--path", "/opt/my worker", "a b"]
        );
        assert_eq!(split(r#"x"y z"w"#), ["xy zw"]);
        assert_eq!(split("'' \"\""), ["", ""]);
        assert_eq!(
            split(r#"'it\s' "say \"hi\" \n""#),
            [r"it\s", r#"say "hi" \n"#]
        );
        assert_eq!(split(r"a\ b \\c"), ["a b", r"\c"]);
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(split_words("'open").unwrap_err().contains("unterminated '"));
        assert!(split_words("\"open")
            .unwrap_err()
            .contains("unterminated \""));
        assert!(split_words("end\\").unwrap_err().contains("trailing"));
    }

    #[test]
    fn core_tools_placeholders_expand() {
        let p = Placeholders {
            runtime_version: Some("3.11".into()),
            os: "LINUX",
            architecture: "X64",
        };
        assert_eq!(
            p.expand("%FUNCTIONS_WORKER_RUNTIME_VERSION%/{os}/{architecture}/worker.py")
                .unwrap(),
            "3.11/LINUX/X64/worker.py"
        );
        assert_eq!(
            p.expand("dist/src/nodejsWorker.js").unwrap(),
            "dist/src/nodejsWorker.js"
        );
        let none = Placeholders {
            runtime_version: None,
            ..p
        };
        let err = none
            .expand("%FUNCTIONS_WORKER_RUNTIME_VERSION%/worker.py")
            .unwrap_err();
        assert!(err.contains("FUNCTIONS_WORKER_RUNTIME_VERSION"), "{err}");
        assert_eq!(none.expand("{os}").unwrap(), "LINUX");
    }

    #[test]
    fn this_machine_uses_the_azure_spelling() {
        let p = Placeholders::this_machine(None);
        assert!(["LINUX", "OSX", "WINDOWS"].contains(&p.os));
        assert!(["X64", "Arm64", "X86", "Arm"].contains(&p.architecture));
    }
}
