//! HTTP route templates as Azure Functions defines them (ASP.NET-style):
//! literal segments (matched case-insensitively), `{name}`, `{name?}`,
//! `{*rest}`, and the constraints `int`, `long`, `bool`, `double`, `guid`,
//! `alpha`, `length(n)`, `length(m,n)`, `minlength(n)`, `maxlength(n)`,
//! `min(n)`, `max(n)` and `range(m,n)`. Anything else (`regex(...)`,
//! `datetime`, ...) is refused when the app loads.

use std::collections::HashMap;

/// One `/`-separated piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Matched case-insensitively; kept lower-cased.
    Literal(String),
    /// `{name}`, `{name?}`, `{name:constraint...}`.
    Param {
        /// The route value's name.
        name: String,
        /// `{name?}`: may be absent (last segments only).
        optional: bool,
        /// Every constraint must hold.
        constraints: Vec<Constraint>,
    },
    /// `{*name}`: the rest of the path (may be empty).
    CatchAll {
        /// The route value's name.
        name: String,
    },
}

/// A route value constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// `true` or `false` (any case).
    Bool,
    /// A floating-point number.
    Double,
    /// A GUID, `8-4-4-4-12` hex digits (braces allowed).
    Guid,
    /// ASCII letters only.
    Alpha,
    /// Length between the bounds, inclusive.
    Length(usize, usize),
    /// An integer between the bounds, inclusive.
    Range(i64, i64),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTemplate {
    /// The text as written.
    pub text: String,
    /// Its segments.
    pub segments: Vec<Segment>,
}

impl RouteTemplate {
    /// Parses `text` (leading and trailing `/` are ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim_matches('/');
        let mut segments = Vec::new();
        let mut names = Vec::new();
        let parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let segment = parse_segment(part)?;
            match &segment {
                Segment::Param { name, optional, .. } => {
                    if *optional && !last {
                        return Err(format!(
                            "optional parameter {{{name}?}} must be the last segment"
                        ));
                    }
                    names.push(name.to_ascii_lowercase());
                }
                Segment::CatchAll { name } => {
                    if !last {
                        return Err(format!("catch-all {{*{name}}} must be the last segment"));
                    }
                    names.push(name.to_ascii_lowercase());
                }
                Segment::Literal(_) => {}
            }
            segments.push(segment);
        }
        let mut sorted = names.clone();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("parameter {{{}}} appears twice", w[0]));
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    /// The template with parameter names erased: two templates with the
    /// same shape match the same paths.
    pub fn shape(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::Param {
                    optional,
                    constraints,
                    ..
                } => format!("{{:{constraints:?}{}}}", if *optional { "?" } else { "" }),
                Segment::CatchAll { .. } => "{*}".to_string(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Matches `path` segments (already split and percent-decoded); the
    /// route values on success.
    pub fn matches(&self, path: &[String]) -> Option<HashMap<String, String>> {
        let mut values = HashMap::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(l) => {
                    if !path.get(i).is_some_and(|p| p.eq_ignore_ascii_case(l)) {
                        return None;
                    }
                }
                Segment::Param {
                    name,
                    optional,
                    constraints,
                } => match path.get(i) {
                    Some(v) if !v.is_empty() => {
                        if !constraints.iter().all(|c| c.allows(v)) {
                            return None;
                        }
                        values.insert(name.clone(), v.clone());
                    }
                    _ if *optional => {}
                    _ => return None,
                },
                Segment::CatchAll { name } => {
                    values.insert(name.clone(), path.get(i..).unwrap_or(&[]).join("/"));
                    return Some(values);
                }
            }
        }
        (path.len() <= self.segments.len()).then_some(values)
    }

    /// How specific each segment is (lower wins a tie between two matching
    /// routes): literal, constrained, plain, optional, catch-all.
    pub fn precedence(&self) -> Vec<u8> {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => 0,
                Segment::Param {
                    optional: false,
                    constraints,
                    ..
                } if !constraints.is_empty() => 1,
                Segment::Param {
                    optional: false, ..
                } => 2,
                Segment::Param { .. } => 3,
                Segment::CatchAll { .. } => 4,
            })
            .collect()
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    let Some(inner) = part.strip_prefix('{') else {
        if part.contains('{') || part.contains('}') {
            return Err(format!(
                "segment \"{part}\" mixes text and parameters (one parameter per segment is supported)"
            ));
        }
        if part.is_empty() {
            return Err("empty segment (\"//\")".into());
        }
        return Ok(Segment::Literal(part.to_ascii_lowercase()));
    };
    let inner = inner
        .strip_suffix('}')
        .ok_or_else(|| format!("segment \"{part}\" is not closed with '}}'"))?;
    if let Some(name) = inner.strip_prefix('*') {
        let name = name.trim_start_matches('*');
        check_name(name)?;
        return Ok(Segment::CatchAll {
            name: name.to_string(),
        });
    }
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(i) => (i, true),
        None => (inner, false),
    };
    let mut pieces = split_constraints(inner).into_iter();
    let name = pieces.next().unwrap_or_default();
    check_name(&name)?;
    let constraints = pieces
        .map(|c| Constraint::parse(&c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Segment::Param {
        name,
        optional,
        constraints,
    })
}

/// `id:int:min(1)` → `id`, `int`, `min(1)` (a `:` inside parentheses stays).
fn split_constraints(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("\"{name}\" is not a valid parameter name"))
    }
}

impl Constraint {
    fn parse(text: &str) -> Result<Self, String> {
        let (name, args) = match text.split_once('(') {
            Some((n, rest)) => {
                let args = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("constraint \"{text}\" is not closed with ')'"))?;
                (n, Some(args))
            }
            None => (text, None),
        };
        let nums = |args: Option<&str>, want: usize| -> Result<Vec<i64>, String> {
            let args = args.ok_or_else(|| format!("constraint \"{text}\" needs arguments"))?;
            let v: Vec<i64> = args
                .split(',')
                .map(|a| a.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("constraint \"{text}\" takes whole numbers"))?;
            if v.len() == want {
                Ok(v)
            } else {
                Err(format!("constraint \"{text}\" takes {want} argument(s)"))
            }
        };
        let len = |n: i64| {
            usize::try_from(n).map_err(|_| format!("constraint \"{text}\" needs a length >= 0"))
        };
        Ok(match (name.to_ascii_lowercase().as_str(), args) {
            ("int", None) => Self::Int,
            ("long", None) => Self::Long,
            ("bool", None) => Self::Bool,
            ("double" | "float" | "decimal", None) => Self::Double,
            ("guid", None) => Self::Guid,
            ("alpha", None) => Self::Alpha,
            ("length", a) if a.is_some_and(|a| a.contains(',')) => {
                let v = nums(a, 2)?;
                Self::Length(len(v[0])?, len(v[1])?)
            }
            ("length", a) => {
                let n = len(nums(a, 1)?[0])?;
                Self::Length(n, n)
            }
            ("minlength", a) => Self::Length(len(nums(a, 1)?[0])?, usize::MAX),
            ("maxlength", a) => Self::Length(0, len(nums(a, 1)?[0])?),
            ("min", a) => Self::Range(nums(a, 1)?[0], i64::MAX),
            ("max", a) => Self::Range(i64::MIN, nums(a, 1)?[0]),
            ("range", a) => {
                let v = nums(a, 2)?;
                Self::Range(v[0], v[1])
            }
            _ => {
                return Err(format!(
                    "route constraint \"{text}\" is not supported (supported: int, long, bool, \
                     double, guid, alpha, length, minlength, maxlength, min, max, range)"
                ))
            }
        })
    }

    fn allows(&self, v: &str) -> bool {
        match self {
            Self::Int => v.parse::<i32>().is_ok(),
            Self::Long => v.parse::<i64>().is_ok(),
            Self::Bool => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
            Self::Double => v.parse::<f64>().is_ok_and(f64::is_finite),
            Self::Guid => is_guid(v),
            Self::Alpha => !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphabetic()),
            Self::Length(min, max) => (*min..=*max).contains(&v.chars().count()),
            Self::Range(min, max) => v.parse::<i64>().is_ok_and(|n| (*min..=*max).contains(&n)),
        }
    }
}

fn is_guid(v: &str) -> bool {
    let v = v
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(v);
    let groups: Vec<&str> = v.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    (groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit())))
        || (v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn literals_match_in_any_case_and_params_capture() {
        let t = RouteTemplate::parse("Products/{category}/{id:int}").unwrap();
        let v = t.matches(&path("products/Toys/42")).unwrap();
        assert_eq!(v["category"], "Toys");
        assert_eq!(v["id"], "42");
        assert!(t.matches(&path("products/toys/forty")).is_none());
        assert!(t.matches(&path("products/toys")).is_none());
        assert!(t.matches(&path("products/toys/1/extra")).is_none());
    }

    #[test]
    fn optional_and_catch_all_segments() {
        let t = RouteTemplate::parse("items/{id?}").unwrap();
        assert!(t.matches(&path("items")).unwrap().is_empty());
        assert_eq!(t.matches(&path("items/7")).unwrap()["id"], "7");
        let t = RouteTemplate::parse("files/{*rest}").unwrap();
        assert_eq!(t.matches(&path("files/a/b/c")).unwrap()["rest"], "a/b/c");
        assert_eq!(t.matches(&path("files")).unwrap()["rest"], "");
    }

    #[test]
    fn constraints_hold_or_the_route_does_not_match() {
        let t = RouteTemplate::parse("{g:guid}/{a:alpha:length(3)}/{n:range(1,9)}").unwrap();
        assert!(t
            .matches(&path("3f2a1b4c-0000-4000-8000-00000000000a/abc/5"))
            .is_some());
        assert!(t
            .matches(&path("3f2a1b4c-0000-4000-8000-00000000000a/abcd/5"))
            .is_none());
        assert!(t
            .matches(&path("3f2a1b4c-0000-4000-8000-00000000000a/abc/10"))
            .is_none());
        assert!(t.matches(&path("nope/abc/5")).is_none());
    }

    #[test]
    fn unsupported_or_malformed_templates_are_refused_naming_the_problem() {
        let e = RouteTemplate::parse("x/{id:regex(^a$)}").unwrap_err();
        assert!(e.contains("regex") && e.contains("not supported"), "{e}");
        assert!(RouteTemplate::parse("x/{id?}/y")
            .unwrap_err()
            .contains("last"));
        assert!(RouteTemplate::parse("{*a}/b").unwrap_err().contains("last"));
        assert!(RouteTemplate::parse("a{id}").unwrap_err().contains("mixes"));
        assert!(RouteTemplate::parse("{id}/{ID}")
            .unwrap_err()
            .contains("twice"));
        assert!(RouteTemplate::parse("{id").unwrap_err().contains("closed"));
        assert!(RouteTemplate::parse("{n:length(a)}")
            .unwrap_err()
            .contains("whole"));
    }

    #[test]
    fn literals_outrank_parameters_which_outrank_catch_alls() {
        let lit = RouteTemplate::parse("a/new").unwrap();
        let param = RouteTemplate::parse("a/{id}").unwrap();
        let typed = RouteTemplate::parse("a/{id:int}").unwrap();
        let rest = RouteTemplate::parse("a/{*rest}").unwrap();
        assert!(lit.precedence() < typed.precedence());
        assert!(typed.precedence() < param.precedence());
        assert!(param.precedence() < rest.precedence());
        assert_eq!(
            RouteTemplate::parse("x/{a}").unwrap().shape(),
            RouteTemplate::parse("X/{b}").unwrap().shape()
        );
    }
}
