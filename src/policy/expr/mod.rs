//! CEL expressions equal to the engine, built from the compiled [`Rules`].
//!
//! Only what a 1.34 API server accepts in new expressions is used: the
//! standard macros, the strings extension, the Kubernetes regex library and
//! the two-variable comprehensions, and optional types. A value used more
//! than once is bound with `optMap` ([`bind`]), or as the element of a
//! one-element list for a list that may be empty ([`bind_list`]): the
//! API server has no `cel.bind`.
//!
//! Every name a comprehension binds starts with `x`, so none can shadow
//! `object`, `oldObject` or `variables`.
//!
//! The parts: this file reads images and locations against the rules;
//! `steps` finds the builder a container runs (directly or wrapped);
//! `walk` rewrites that builder's arguments; `csv` reads BuildKit CSV.

mod csv;
mod steps;
mod walk;

use super::grammar;
use crate::engine::rules::{BuilderProfile, CredentialSpec, RewriteRule, Rules};
use walk::Tables;
pub use walk::BUILDS;

/// A CEL string literal.
pub fn lit(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '\n' => out.push_str(r"\n"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A CEL list of string literals.
pub fn lit_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| lit(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// `body` with `name` bound to `value`, which is never an empty list or
/// map: as the accumulator of a comprehension that never iterates
/// (`optMap`), the cheapest binding CEL prices (8 units, a third of
/// [`bind_list`]'s). cel-go makes an empty list or map accumulator
/// mutable, and a `+` on it would then append to it in place.
fn bind(name: &str, value: &str, body: &str) -> String {
    format!("optional.of({value}).optMap({name}, {body}).value()")
}

/// As [`bind`], for a list or map that may be empty: bound as the one
/// element a `map` iterates over, which nothing appends to.
fn bind_list(name: &str, value: &str, body: &str) -> String {
    format!("[{value}].map({name}, {body})[0]")
}

/// Expressions over one compiled rule set.
pub struct Exprs<'r> {
    rules: &'r Rules,
}

/// How a reading of a registry value is written: `[prefix + new text,
/// 't']` when a rule rewrites it, `[otherwise, 't']` on a rewrite target,
/// `[otherwise, '']` for any other text. A flag's reading is then its new
/// argument, with no second list to build.
struct Written<'a> {
    prefix: &'a str,
    otherwise: &'a str,
}

impl Written<'_> {
    /// The new text alone, `''` where nothing changes.
    const ALONE: Written<'static> = Written {
        prefix: "",
        otherwise: "''",
    };

    /// The reading, given the rule `xrk` it matches, whether the rest is
    /// `valid`, and the `new` text.
    fn decide(&self, valid: &str, new: &str) -> String {
        let otherwise = self.otherwise;
        let new = if self.prefix.is_empty() {
            new.to_owned()
        } else {
            format!("{} + {new}", self.prefix)
        };
        format!(
            "xrk == '' ? [{otherwise}, ''] : !({valid}) ? [{otherwise}, ''] : \
             xrk == 't' ? [{otherwise}, 't'] : [{new}, 't']"
        )
    }
}

/// The role of a builder flag, as one letter in the role map.
const IMAGE: char = 'i';
const LOCATION: char = 'l';
const CSV: char = 'c';
const REMOVE: char = 'r';
const REMOVE_REGISTRY: char = 'g';
const TLS_VERIFY: char = 't';
const REGISTRY_MAP: char = 'm';
const VALUE: char = 'v';

/// pflag's false values.
const FALSE_VALUES: &[&str] = &["false", "FALSE", "False", "f", "F", "0"];

impl<'r> Exprs<'r> {
    pub fn new(rules: &'r Rules) -> Self {
        Exprs { rules }
    }

    /// `[host, port, 'y' if a port was written]` of the lower-cased domain `xrd`.
    const HOST_PORT: &'static str = "(xrd.lastIndexOf(':') > xrd.lastIndexOf(']') \
        ? [xrd.substring(0, xrd.lastIndexOf(':')), xrd.substring(xrd.lastIndexOf(':') + 1), 'y'] \
        : [xrd, '', ''])";

    /// `xrh` (see [`Self::HOST_PORT`]) is `host[:port]`: the host compared
    /// ASCII case-insensitively (`xrd` is lower-cased), the port as a number.
    fn is_domain(host: &str, port: Option<u16>) -> String {
        let port = match port {
            Some(port) => format!(
                "xrh[2] == 'y' && xrh[1].matches({})",
                lit(&grammar::port(port))
            ),
            None => "xrh[2] == ''".to_owned(),
        };
        format!("(xrh[0] == {} && {port})", lit(&host.to_ascii_lowercase()))
    }

    fn is_source(rule: &RewriteRule) -> String {
        Self::is_domain(&rule.from_host, rule.from_port)
    }

    /// `rewrite_name(rest)` of a rule: the part in front of the rest.
    fn to_base(rule: &RewriteRule) -> String {
        rule.rewrite_name("")
    }

    /// Characters after the first `/` of a source reference that the rule
    /// replaces: its path prefix and the `/` after it.
    fn prefix_skip(rule: &RewriteRule) -> usize {
        if rule.from_prefix.is_empty() {
            0
        } else {
            1 + rule.from_prefix.len()
        }
    }

    /// Which rule (its index, as text) matches the lower-cased domain `xrd`
    /// and the rest in `xrr`, else `'t'` for a rewrite target, else `''`.
    /// First match wins, as in the engine. `ends` are the characters that
    /// may follow a path prefix. Only a port written with a leading zero can
    /// equal a rule's without the same text, so the text is compared first
    /// and host and port are parsed only then: the parse costs more than
    /// the rest of the image.
    fn kind(&self, ends: &[&str]) -> String {
        let chain = |is_domain: &dyn Fn(&str, Option<u16>) -> String| {
            let mut chain = String::new();
            for (index, rule) in self.rules.rewrites.iter().enumerate() {
                let prefix = &rule.from_prefix;
                let on_boundary = if prefix.is_empty() {
                    String::new()
                } else {
                    format!(
                        " && xrr.startsWith({}) && xrr.charAt({}) in {}",
                        lit(prefix),
                        prefix.chars().count(),
                        lit_list(ends)
                    )
                };
                chain.push_str(&format!(
                    "{}{on_boundary} ? '{index}' : ",
                    is_domain(&rule.from_host, rule.from_port)
                ));
            }
            let mut targets: Vec<String> = Vec::new();
            for rule in &self.rules.rewrites {
                let target = is_domain(&rule.to_host, rule.to_port);
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
            format!("({chain}({}) ? 't' : '')", targets.join(" || "))
        };
        let parsed = bind("xrh", Self::HOST_PORT, &chain(&Self::is_domain));
        format!(
            "(xrd.contains(':0') ? {parsed} : {})",
            chain(&Self::is_domain_text)
        )
    }

    /// `xrd` is `host[:port]` as text: true of every domain equal to it
    /// whose port has no leading zero.
    fn is_domain_text(host: &str, port: Option<u16>) -> String {
        let text = match port {
            Some(port) => format!("{}:{port}", host.to_ascii_lowercase()),
            None => host.to_ascii_lowercase(),
        };
        format!("xrd == {}", lit(&text))
    }

    /// The new text for rule `xrk`: the rule's base, then `rest(skip)`, the
    /// text after the first `/` and the rule's prefix.
    fn new_text(&self, rest: impl Fn(usize) -> String) -> String {
        let mut chain = String::new();
        for (index, rule) in self.rules.rewrites.iter().enumerate() {
            chain.push_str(&format!(
                "xrk == '{index}' ? {} + {} : ",
                lit(&Self::to_base(rule)),
                rest(Self::prefix_skip(rule))
            ));
        }
        format!("({chain}'')")
    }

    /// `[new, 't']` for image `x` that a rule rewrites, `['', 't']` for one
    /// already on a rewrite target, `['', '']` for any other text (another
    /// registry, or not a valid reference).
    pub fn image_info(&self, x: &str) -> String {
        self.image_written(x, &Written::ALONE)
    }

    /// As [`Self::image_info`], written as `written` says.
    fn image_written(&self, x: &str, written: &Written) -> String {
        // Name (domain and path) at most 255 characters: always, when the
        // whole text is.
        let name_fits = format!(
            "(size(xrx) <= 255 || {})",
            bind(
                "xrn",
                "xrx.contains('@') ? xrx.substring(0, xrx.indexOf('@')) : xrx",
                "(xrn.lastIndexOf(':') > xrn.lastIndexOf('/') ? xrn.lastIndexOf(':') : size(xrn)) <= 255",
            )
        );
        // Constant patterns, which the API server compiles once; the one
        // without the digest is half as long, and CEL prices a match by it.
        let valid = format!(
            "(xrr.contains('@') ? xrr.matches({}) : xrr.matches({})) && {name_fits}",
            lit(&grammar::image_rest()),
            lit(&grammar::tagged_rest()),
        );
        let decide = written.decide(
            &valid,
            &self.new_text(|skip| format!("xrx.substring(xrs + {skip})")),
        );
        let body = bind(
            "xrd",
            "xrx.substring(0, xrs).lowerAscii()",
            &bind(
                "xrr",
                "xrx.substring(xrs + 1)",
                &bind("xrk", &self.kind(&["", "/", ":", "@"]), &decide),
            ),
        );
        bind(
            "xrx",
            &format!("string({x})"),
            &bind(
                "xrs",
                "xrx.indexOf('/')",
                &format!("xrs <= 0 ? [{}, ''] : {body}", written.otherwise),
            ),
        )
    }

    /// As [`Self::image_info`], for a registry location (`host[:port][/path]`).
    fn location_info(&self, x: &str) -> String {
        self.location_written(x, &Written::ALONE)
    }

    /// As [`Self::location_info`], written as `written` says.
    fn location_written(&self, x: &str, written: &Written) -> String {
        let decide = written.decide(
            &format!(
                "(xrs < 0 || xrr.matches({}))",
                lit(&grammar::location_rest())
            ),
            &self.new_text(|skip| format!("(xrs < 0 ? '' : xrx.substring(xrs + {skip}))")),
        );
        let body = bind(
            "xrd",
            "(xrs < 0 ? xrx : xrx.substring(0, xrs)).lowerAscii()",
            &bind(
                "xrr",
                "xrs < 0 ? '' : xrx.substring(xrs + 1)",
                &bind("xrk", &self.kind(&["", "/"]), &decide),
            ),
        );
        bind(
            "xrx",
            &format!("string({x})"),
            &bind("xrs", "xrx.indexOf('/')", &body),
        )
    }

    /// The first component of `x` is a rewrite source.
    fn names_source(&self, x: &str) -> String {
        let any: Vec<String> = self.rules.rewrites.iter().map(Self::is_source).collect();
        bind(
            "xrd",
            &format!("string({x}).split('/')[0].lowerAscii()"),
            &bind("xrh", Self::HOST_PORT, &format!("({})", any.join(" || "))),
        )
    }

    /// Each flag of `profile` with its role, the first role winning in the
    /// engine's order (`Role` in the builders module).
    fn roles(profile: &BuilderProfile) -> Vec<(String, char)> {
        let mut entries: Vec<(String, char)> = Vec::new();
        let mut add = |flags: &[String], role: char| {
            for flag in flags {
                if !entries.iter().any(|(f, _)| f == flag) {
                    entries.push((flag.clone(), role));
                }
            }
        };
        add(&profile.flags.image_flags, IMAGE);
        add(&profile.flags.location_flags, LOCATION);
        add(&profile.flags.csv_flags, CSV);
        add(&profile.flags.remove_flags, REMOVE);
        add(&profile.flags.remove_registry_flags, REMOVE_REGISTRY);
        add(profile.flags.tls_verify_flag.as_slice(), TLS_VERIFY);
        add(profile.flags.registry_map_flag.as_slice(), REGISTRY_MAP);
        add(&profile.flags.value_flags, VALUE);
        entries
    }

    /// The builders' tables the walk reads, as policy variables: each a list
    /// with one entry per profile, in the profiles' order.
    pub fn builder_tables(&self) -> Vec<(String, String)> {
        let builders = &self.rules.builders;
        let table = |name: &str, entry: &dyn Fn(&BuilderProfile) -> String| {
            let entries: Vec<String> = builders.iter().map(entry).collect();
            (name.to_owned(), format!("[{}]", entries.join(", ")))
        };
        let credential_flags = |flags: fn(&CredentialSpec) -> &[String]| {
            move |profile: &BuilderProfile| match &profile.credentials {
                Some(credentials) => lit_list(flags(credentials)),
                None => "[]".to_owned(),
            }
        };
        vec![
            table(Tables::ROLES, &Self::role_map),
            table(Tables::VALUE_FLAGS, &Self::value_flags),
            table(Tables::SUBCOMMANDS, &|p| lit_list(&p.subcommands)),
            table(Tables::IMAGE_ARGUMENTS, &|p| lit_list(&p.image_arguments)),
            table(Tables::REGISTRY_MAP, &|p| {
                lit(p.flags.registry_map_flag.as_deref().unwrap_or(""))
            }),
            table(Tables::OWN_FLAGS, &credential_flags(|c| &c.own_flags)),
            table(Tables::UNSAFE_FLAGS, &credential_flags(|c| &c.unsafe_flags)),
        ]
    }

    /// The role map of a profile.
    fn role_map(profile: &BuilderProfile) -> String {
        let entries: Vec<String> = Self::roles(profile)
            .iter()
            .map(|(flag, role)| format!("{}: '{role}'", lit(flag)))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }

    /// The flags of a profile that take the next argument as their value
    /// when written alone: one lookup tells them.
    fn value_flags(profile: &BuilderProfile) -> String {
        let entries: Vec<String> = Self::roles(profile)
            .iter()
            .filter(|(flag, role)| {
                ![REMOVE, TLS_VERIFY].contains(role)
                    && flag.starts_with('-')
                    && flag != "-"
                    && !flag.contains('=')
            })
            .map(|(flag, _)| format!("{}: true", lit(flag)))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }

    /// `configured` names executable `x` (see `names_executable`).
    fn names_executable(configured: &str, x: &str) -> String {
        if configured.contains('/') {
            format!("{x} == {}", lit(configured))
        } else {
            format!(
                "({x} == {} || {x}.endsWith({}))",
                lit(configured),
                lit(&format!("/{configured}"))
            )
        }
    }

    /// The index of the first profile that runs executable `x`, or -1.
    fn profile_for_executable(&self, x: &str) -> String {
        let mut chain = String::new();
        for (index, profile) in self.rules.builders.iter().enumerate() {
            if profile.executables.is_empty() {
                continue;
            }
            let any: Vec<String> = profile
                .executables
                .iter()
                .map(|e| Self::names_executable(e, x))
                .collect();
            chain.push_str(&format!("({}) ? {index} : ", any.join(" || ")));
        }
        format!("({chain}-1)")
    }

    /// The index of the first profile whose image `x` is, or -1.
    fn profile_for_image(&self, x: &str) -> String {
        let mut chain = String::new();
        for (index, profile) in self.rules.builders.iter().enumerate() {
            if profile.repositories.is_empty() {
                continue;
            }
            let any: Vec<String> = profile
                .repositories
                .iter()
                .map(|r| {
                    format!(
                        "({x}.contains({}) && {x}.matches({}))",
                        lit(grammar::repository_text(r)),
                        lit(&grammar::repository(r))
                    )
                })
                .collect();
            chain.push_str(&format!("({}) ? {index} : ", any.join(" || ")));
        }
        format!("({chain}-1)")
    }
}
