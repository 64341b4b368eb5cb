//! CEL expressions equal to the engine, built from the compiled [`Rules`].
//!
//! Only what a 1.34 API server accepts in new expressions is used: the
//! standard macros, the strings extension, the Kubernetes regex library and
//! the two-variable comprehensions. A value used more than once is bound
//! with `[value].map(name, body)[0]`, which works everywhere `cel.bind`
//! might not.
//!
//! Every name a comprehension binds starts with `x`, so none can shadow
//! `object`, `oldObject` or `variables`.

use super::grammar;
use crate::engine::rules::{BuilderProfile, RewriteRule, Rules, Wrapper};

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

/// `body` with `name` bound to `value`.
fn bind(name: &str, value: &str, body: &str) -> String {
    format!("[{value}].map({name}, {body})[0]")
}

/// Expressions over one compiled rule set.
pub struct Exprs<'r> {
    rules: &'r Rules,
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
/// Transports a Buildah image argument may name; only `docker://` is a registry.
const OTHER_TRANSPORTS: &[&str] = &[
    "docker-archive:",
    "docker-daemon:",
    "containers-storage:",
    "oci:",
    "oci-archive:",
    "dir:",
    "sif:",
    "ostree:",
];

impl<'r> Exprs<'r> {
    pub fn new(rules: &'r Rules) -> Self {
        Exprs { rules }
    }

    fn source_domain(rule: &RewriteRule) -> String {
        grammar::domain(&rule.from_host, rule.from_port)
    }

    fn target_domains(&self) -> String {
        let mut domains: Vec<String> = Vec::new();
        for rule in &self.rules.rewrites {
            let domain = grammar::domain(&rule.to_host, rule.to_port);
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        format!("(?:{})", domains.join("|"))
    }

    /// The name (domain and path) of reference `x` is at most 255 characters.
    fn name_fits(x: &str) -> String {
        format!(
            "(size({x}.split('@')[0]) - size({x}.split('@')[0].find({})) <= 255)",
            lit(r":[\w][\w.-]*$")
        )
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

    /// Consecutive rules that rewrite alike (same target, same prefix
    /// length), as one pattern each: first match still wins.
    fn rule_groups(&self) -> Vec<Vec<&RewriteRule>> {
        let mut groups: Vec<Vec<&RewriteRule>> = Vec::new();
        for rule in &self.rules.rewrites {
            match groups.last_mut() {
                Some(group)
                    if Self::to_base(group[0]) == Self::to_base(rule)
                        && Self::prefix_skip(group[0]) == Self::prefix_skip(rule) =>
                {
                    group.push(rule)
                }
                _ => groups.push(vec![rule]),
            }
        }
        groups
    }

    /// The rewritten reference of image `x`, or `''` when no rule matches
    /// (or `x` is not a valid reference).
    pub fn image_new(&self, x: &str) -> String {
        let mut chain = String::new();
        for (index, group) in self.rule_groups().iter().enumerate() {
            chain.push_str(&format!(
                "{x}.matches(variables.rewrite{index}Image) ? {} + {x}.substring({x}.indexOf('/') + {}) : ",
                lit(&Self::to_base(group[0])),
                Self::prefix_skip(group[0])
            ));
        }
        format!("({} ? ({chain}'') : '')", Self::name_fits(x))
    }

    /// Image `x` is a valid reference on a rewrite target.
    pub fn image_on_target(&self, x: &str) -> String {
        format!(
            "({} && {x}.matches(variables.targetImage))",
            Self::name_fits(x)
        )
    }

    /// Image `x` is rewritten, or already on a rewrite target.
    pub fn image_ends_on_target(&self, x: &str) -> String {
        format!(
            "({} != '' || {})",
            self.image_new(x),
            self.image_on_target(x)
        )
    }

    /// The rewritten registry location `x`, or `''`.
    fn location_new(&self, x: &str) -> String {
        let mut chain = String::new();
        for (index, group) in self.rule_groups().iter().enumerate() {
            let rule = group[0];
            let base = lit(&Self::to_base(rule));
            let new = if rule.from_prefix.is_empty() {
                format!("({x}.contains('/') ? {base} + {x}.substring({x}.indexOf('/')) : {base})")
            } else {
                format!(
                    "{base} + {x}.substring({x}.indexOf('/') + {})",
                    Self::prefix_skip(rule)
                )
            };
            chain.push_str(&format!(
                "{x}.matches(variables.rewrite{index}Location) ? {new} : "
            ));
        }
        format!("({chain}'')")
    }

    fn location_on_target(&self, x: &str) -> String {
        format!("{x}.matches(variables.targetLocation)")
    }

    /// The first component of `x` is a rewrite source.
    fn names_source(&self, x: &str) -> String {
        format!("{x}.split('/')[0].matches(variables.sourceDomain)")
    }

    /// The regular expressions, as policy variables: `(name, expression)`.
    pub fn pattern_variables(&self) -> Vec<(String, String)> {
        let mut variables = Vec::new();
        for (index, group) in self.rule_groups().iter().enumerate() {
            let image: Vec<String> = group
                .iter()
                .map(|rule| grammar::image_on(&Self::source_domain(rule), &rule.from_prefix))
                .collect();
            let location: Vec<String> = group
                .iter()
                .map(|rule| grammar::location_on(&Self::source_domain(rule), &rule.from_prefix))
                .collect();
            variables.push((format!("rewrite{index}Image"), lit(&image.join("|"))));
            variables.push((format!("rewrite{index}Location"), lit(&location.join("|"))));
        }
        let targets = self.target_domains();
        variables.push(("targetImage".into(), lit(&grammar::image_on(&targets, ""))));
        variables.push((
            "targetLocation".into(),
            lit(&grammar::location_on(&targets, "")),
        ));
        let sources: Vec<String> = self
            .rules
            .rewrites
            .iter()
            .map(Self::source_domain)
            .collect();
        variables.push(("sourceDomain".into(), lit(&grammar::any_domain(&sources))));
        variables
    }

    /// The role map of profile `index`, as a policy variable.
    pub fn role_map(profile: &BuilderProfile) -> String {
        let mut entries: Vec<(String, char)> = Vec::new();
        let mut add = |flags: &[String], role: char| {
            for flag in flags {
                if !entries.iter().any(|(f, _)| f == flag) {
                    entries.push((flag.clone(), role));
                }
            }
        };
        add(&profile.image_flags, IMAGE);
        add(&profile.location_flags, LOCATION);
        add(&profile.csv_flags, CSV);
        add(&profile.remove_flags, REMOVE);
        add(&profile.remove_registry_flags, REMOVE_REGISTRY);
        add(profile.tls_verify_flag.as_slice(), TLS_VERIFY);
        add(profile.registry_map_flag.as_slice(), REGISTRY_MAP);
        add(&profile.value_flags, VALUE);
        let entries: Vec<String> = entries
            .iter()
            .map(|(flag, role)| format!("{}: '{role}'", lit(flag)))
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
                .map(|r| format!("{x}.matches({})", lit(&grammar::repository(r))))
                .collect();
            chain.push_str(&format!("({}) ? {index} : ", any.join(" || ")));
        }
        format!("({} ? ({chain}-1) : -1)", Self::name_fits(x))
    }

    /// `[profile, start]` for a wrapped step in `xall` (command then args):
    /// the profile of the program the wrapper runs, and where its arguments
    /// start; `[-1, 0]` when the arguments do not have the wrapper's shape.
    fn unwrap(&self, wrapper: &Wrapper) -> String {
        let own_start = if wrapper.subcommand.is_some() { 2 } else { 1 };
        let separator = format!(
            "xall.transformList(xg, xa, xg >= {own_start} && xa == '--' ? 'S' : '.').join('').indexOf('S')"
        );
        let found = match &wrapper.executable_flag {
            Some(flag) => {
                let name = flag.trim_start_matches('-');
                let pattern = format!("(?s)^-*{}(?:=.*)?$", regex_literal(name));
                let candidates = format!(
                    "xall.transformList(xg, xa, xg >= {own_start} && xg < xsep && xa.matches({}) && (xa.contains('=') || xg + 1 < xsep) ? 'E' : '.').join('').lastIndexOf('E')",
                    lit(&pattern)
                );
                let program = "(xall[xe].contains('=') ? xall[xe].substring(xall[xe].indexOf('=') + 1) : xall[xe + 1])";
                bind(
                    "xe",
                    &candidates,
                    &format!(
                        "xe < 0 ? [-1, 0] : [{}, xsep + 1]",
                        bind("xp", program, &self.profile_for_executable("xp"))
                    ),
                )
            }
            None => format!(
                "xsep + 1 < size(xall) ? [{}, xsep + 2] : [-1, 0]",
                self.profile_for_executable("xall[xsep + 1]")
            ),
        };
        let body = bind("xsep", &separator, &format!("xsep < 0 ? [-1, 0] : {found}"));
        match &wrapper.subcommand {
            Some(subcommand) => format!(
                "(size(xall) > 1 && xall[1] == {} ? {body} : [-1, 0])",
                lit(subcommand)
            ),
            None => body,
        }
    }

    /// `[profile, start]` for container `xc`, with `xall` and `xk` bound:
    /// which builder it runs and where that builder's arguments start in
    /// `xall`; `[-1, 0]` for none.
    fn build_of(&self) -> String {
        let mut wrapped = String::new();
        for wrapper in &self.rules.wrappers {
            let any: Vec<String> = wrapper
                .executables
                .iter()
                .map(|e| Self::names_executable(e, "xall[0]"))
                .collect();
            wrapped.push_str(&format!(
                "({}) ? {} : ",
                any.join(" || "),
                self.unwrap(wrapper)
            ));
        }
        format!(
            "xk == 0 ? (has(xc.image) ? [{}, 0] : [-1, 0]) : {wrapped}[{}, 1]",
            self.profile_for_image("xc.image"),
            self.profile_for_executable("xall[0]")
        )
    }

    /// Binds `xall` (command, then args) and `xk` (the length of command)
    /// for container `xc` around `body`.
    fn with_lists(body: &str) -> String {
        bind(
            "xall",
            "(has(xc.command) ? xc.command : []) + (has(xc.args) ? xc.args : [])",
            &bind("xk", "(has(xc.command) ? size(xc.command) : 0)", body),
        )
    }

    /// `[command, args]` as the builder container `xc` runs would have them,
    /// or `[]` when `xc` runs no builder.
    pub fn build(&self) -> String {
        let mut switch = String::new();
        for (index, profile) in self.rules.builders.iter().enumerate() {
            switch.push_str(&format!(
                "xps[0] == {index} ? {} : ",
                self.walk(index, profile)
            ));
        }
        Self::with_lists(&bind("xps", &self.build_of(), &format!("({switch}[])")))
    }

    /// One profile's walk over `xall[xs:]`, with `xps = [profile, start]`
    /// bound; the value is the new `field`.
    fn walk(&self, index: usize, profile: &BuilderProfile) -> String {
        let roles = format!("variables.builder{index}Roles");
        let role = |x: &str| format!("({x} in {roles} ? {roles}[{x}] : '')");
        let takes_value = |x: &str| format!("({x} in {roles} && !({roles}[{x}] in ['r', 't']))");
        let bit = format!(
            "(xa.startsWith('-') && xa != '-' && !xa.contains('=') && {} ? '1' : '0')",
            takes_value("xa")
        );
        let consumed = "(xj > 0 && (xj - xb.substring(0, xj).lastIndexOf('0') - 1) % 2 == 1)";
        let terminator = format!(
            "xw.transformList(xj, xa, xa == '--' && !{consumed} ? 'T' : '.').join('').indexOf('T')"
        );
        // [kind, role, value, inline prefix]; kinds: p positional, x the
        // terminator, v a value taken from the argument before, f a flag
        // with its value inline, b a flag whose value is the next argument,
        // n a flag without a value.
        let describe = format!(
            "xt >= 0 && xj > xt ? ['p', '', '', ''] : \
             xj == xt ? ['x', '', '', ''] : \
             {consumed} ? ['v', {role_before}, string(xa), ''] : \
             !(xa.startsWith('-') && xa != '-') ? ['p', '', '', ''] : \
             xa.contains('=') ? {inline} : \
             xb.charAt(xj) == '1' ? (xj + 1 < size(xw) ? ['b', {role_a}, string(xw[xj + 1]), ''] : ['n', {role_a}, '', '']) : \
             size(xa) > 2 && xa.charAt(1) != '-' && {glued_takes} ? ['f', {role_glued}, xa.substring(2), xa.substring(0, 2)] : \
             ['n', {role_a}, '', '']",
            role_before = role("xw[xj - 1]"),
            inline = bind(
                "xe",
                "xa.indexOf('=')",
                &format!(
                    "['f', {}, xa.substring(xe + 1), xa.substring(0, xe + 1)]",
                    role("xa.substring(0, xe)")
                )
            ),
            role_a = role("xa"),
            glued_takes = takes_value("xa.substring(0, 2)"),
            role_glued = role("xa.substring(0, 2)"),
        );

        let has_subcommands = !profile.subcommands.is_empty();
        let has_image_arguments = !profile.image_arguments.is_empty();
        let has_tls = profile.tls_verify_flag.is_some();

        // The new text of a flag's value (`xv`, written after `xpre`), or `xa`.
        let mut value_new = String::new();
        if !profile.image_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'i' ? {} : ",
                bind("xr", &self.image_new("xv"), "xr != '' ? xpre + xr : xa")
            ));
        }
        if !profile.location_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'l' ? {} : ",
                bind("xr", &self.location_new("xv"), "xr != '' ? xpre + xr : xa")
            ));
        }
        if !profile.csv_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'c' && {} ? xpre + {} : ",
                csv_readable("xv"),
                self.csv_new("xv")
            ));
        }
        value_new.push_str("xa");
        let value_new = bind("xv", "xd[2]", &bind("xpre", "xd[3]", &value_new));

        let image_argument_new = format!(
            "(xa.startsWith('docker://') ? {} : {} ? xa : {})",
            bind(
                "xr",
                &self.image_new("xa.substring(9)"),
                "xr != '' ? 'docker://' + xr : xa"
            ),
            OTHER_TRANSPORTS
                .iter()
                .map(|t| format!("xa.startsWith({})", lit(t)))
                .collect::<Vec<_>>()
                .join(" || "),
            bind("xr", &self.image_new("xa"), "xr != '' ? xr : xa")
        );
        let image_argument_on_target = format!(
            "(xa.startsWith('docker://') ? {} : {} ? false : {})",
            self.image_ends_on_target("xa.substring(9)"),
            OTHER_TRANSPORTS
                .iter()
                .map(|t| format!("xa.startsWith({})", lit(t)))
                .collect::<Vec<_>>()
                .join(" || "),
            self.image_ends_on_target("xa")
        );
        // A positional argument that is an image: after the subcommand,
        // when the subcommand takes images.
        let is_image_argument = format!(
            "(xd[0] == 'p' && xj != xt && xj > xf && xsub in {})",
            lit_list(&profile.image_arguments)
        );

        // [] to drop the argument, [text] to keep it as text.
        let mut drop = vec![
            "(xd[0] != 'v' && xd[1] == 'r')".to_owned(),
            format!(
                "(xd[1] == 'g' && xd[0] in ['f', 'v', 'b'] && {})",
                self.names_source("xd[2]")
            ),
        ];
        if has_tls {
            drop.push(format!(
                "(xreach && xd[0] == 'f' && xd[1] == 't' && xd[2] in {})",
                lit_list(FALSE_VALUES)
            ));
        }
        let mut new_text = format!("xd[0] in ['v', 'f'] ? {value_new} : ");
        if has_image_arguments {
            new_text.push_str(&format!("{is_image_argument} ? {image_argument_new} : "));
        }
        new_text.push_str("xa");
        let new_item = bind(
            "xd",
            "xds[xj]",
            &format!("({}) ? [] : [{new_text}]", drop.join(" || ")),
        );

        // The build pushes to an HTTPS registry: a flag's image or location
        // ends on a rewrite target, or every image of a CSV value does.
        let mut push_roles = Vec::new();
        if !profile.image_flags.is_empty() {
            push_roles.push(format!(
                "xd[1] == 'i' && {}",
                self.image_ends_on_target("xd[2]")
            ));
        }
        if !profile.location_flags.is_empty() {
            push_roles.push(format!(
                "xd[1] == 'l' && ({} != '' || {})",
                self.location_new("xd[2]"),
                self.location_on_target("xd[2]")
            ));
        }
        if !profile.csv_flags.is_empty() {
            push_roles.push(format!(
                "xd[1] == 'c' && {} && {}",
                csv_readable("xd[2]"),
                self.csv_pushes("xd[2]")
            ));
        }
        let pushes = if push_roles.is_empty() {
            "false".to_owned()
        } else {
            format!(
                "xds.exists(xd, xd[0] in ['v', 'f'] && ({}))",
                push_roles
                    .iter()
                    .map(|r| format!("({r})"))
                    .collect::<Vec<_>>()
                    .join(" || ")
            )
        };

        // `--registry-map` for every internal registry not mapped yet.
        let maps = match &profile.registry_map_flag {
            None => "[]".to_owned(),
            Some(flag) => {
                let keys = "xds.filter(xd, xd[0] in ['v', 'f'] && xd[1] == 'm').map(xd, xd[2]).join(';').split(';').filter(xm, xm.contains('=')).map(xm, xm.substring(0, xm.indexOf('=')))";
                let mut added = Vec::new();
                for rule in self
                    .rules
                    .rewrites
                    .iter()
                    .filter(|r| r.from_prefix.is_empty())
                {
                    let pattern = grammar::any_domain(&[Self::source_domain(rule)]);
                    let text = format!("{flag}={}={}", rule.from_text, rule.rewrite_name(""));
                    added.push(format!(
                        "(xkeys.exists(xm, xm.matches({})) ? [] : [{}])",
                        lit(&pattern),
                        lit(&text)
                    ));
                }
                if added.is_empty() {
                    "[]".to_owned()
                } else {
                    format!(
                        "(xchanged || xpush ? {} : [])",
                        bind("xkeys", keys, &added.join(" + "))
                    )
                }
            }
        };

        // The new lists: arguments before the builder's keep their text, the
        // maps go where the builder's own arguments start.
        let kept = |range: &str| {
            format!(
                "xall.transformList(xg, xa, {range} && (xg < xs || size(xn[xg - xs]) > 0), xg < xs ? xa : xn[xg - xs][0])"
            )
        };
        let into_command = "(xs >= 1 && xs - 1 < xk)";
        let result = format!(
            "[{} + ({into_command} ? xmaps : []) + {}, {} + ({into_command} ? [] : xmaps) + {}]",
            kept("xg < xk && xg < xs"),
            kept("xg < xk && xg >= xs"),
            kept("xg >= xk && xg < xs"),
            kept("xg >= xk && xg >= xs")
        );

        let changed = "xw.exists(xj, xa, size(xn[xj]) == 0 || xn[xj][0] != xa)";
        let mut body = bind(
            "xchanged",
            changed,
            &bind("xpush", &pushes, &bind("xmaps", &maps, &result)),
        );
        body = bind(
            "xn",
            &format!("xw.transformList(xj, xa, {new_item})"),
            &body,
        );
        if has_tls {
            let last = "xds.transformList(xj, xd, xd[0] == 'p' && xj != xt && xj > xf ? 'P' : '.').join('').lastIndexOf('P')";
            let reach = format!(
                "xsub in {} && xl > xf && {}",
                lit_list(&profile.image_arguments),
                bind("xa", "xw[xl]", &image_argument_on_target)
            );
            body = bind("xreach", &bind("xl", last, &reach), &body);
        }
        let original = "[(has(xc.command) ? xc.command : []), (has(xc.args) ? xc.args : [])]";
        if has_subcommands || has_image_arguments || has_tls {
            let first = "xds.transformList(xj, xd, xd[0] == 'p' && xj != xt ? 'P' : '.').join('').indexOf('P')";
            body = bind(
                "xf",
                first,
                &bind(
                    "xsub",
                    if has_subcommands {
                        "xf >= 0 ? xw[xf] : ''"
                    } else {
                        "''"
                    },
                    &body,
                ),
            );
            if has_subcommands {
                body = format!(
                    "({} ? {body} : {original})",
                    bind(
                        "xf",
                        first,
                        &format!("xf >= 0 && xw[xf] in {}", lit_list(&profile.subcommands))
                    )
                );
            }
        }
        body = bind(
            "xds",
            &format!("xw.transformList(xj, xa, {describe})"),
            &body,
        );
        body = bind("xt", &terminator, &body);
        body = bind("xb", &format!("xw.map(xa, {bit}).join('')"), &body);
        body = bind("xw", "xall.transformList(xg, xa, xg >= xs, xa)", &body);
        bind("xs", "xps[1]", &body)
    }

    /// The fields of CSV value `x` (no quotes, so split on commas).
    fn csv_fields(x: &str) -> String {
        format!("{x}.split(',')")
    }

    /// The images of a CSV field `xq` (`name=`/`ref=`), or `''`.
    fn csv_image_key(xq: &str) -> String {
        format!(
            "({xq}.contains('=') && {xq}.substring(0, {xq}.indexOf('=')).lowerAscii() in ['name', 'ref'])"
        )
    }

    /// CSV value `x` with its images rewritten, and `registry.insecure=true`
    /// dropped once every image is on the HTTPS registry.
    fn csv_new(&self, x: &str) -> String {
        let value = "xq.substring(xq.indexOf('=') + 1)";
        let is_image = Self::csv_image_key("xq");
        let insecure = "xqs.transformList(xj, xq, xq.contains('=') && xq.substring(0, xq.indexOf('=')).lowerAscii() == 'registry.insecure' && xq.substring(xq.indexOf('=') + 1) == 'true' ? 'I' : '.').join('').lastIndexOf('I')";
        let new_values = format!(
            "xqs.map(xq, {is_image} ? {} : '')",
            bind("xu", value, &self.image_new("xu"))
        );
        let all_on_target = format!(
            "xqs.all(xj, xq, !{is_image} || xqn[xj] != '' || {})",
            bind("xu", value, &self.image_on_target("xu"))
        );
        let result = "xqs.transformList(xj, xq, !(xqany && xqall && xj == xins), xqn[xj] != '' ? xq.substring(0, xq.indexOf('=') + 1) + xqn[xj] : xq).join(',')";
        bind(
            "xqs",
            &Self::csv_fields(x),
            &bind(
                "xqn",
                &new_values,
                &bind(
                    "xqany",
                    &format!("xqs.exists(xq, {is_image})"),
                    &bind("xqall", &all_on_target, &bind("xins", insecure, result)),
                ),
            ),
        )
    }

    /// Every image of CSV value `x` ends on a rewrite target (and there is one).
    fn csv_pushes(&self, x: &str) -> String {
        let is_image = Self::csv_image_key("xq");
        let value = "xq.substring(xq.indexOf('=') + 1)";
        bind(
            "xqs",
            &Self::csv_fields(x),
            &format!(
                "xqs.exists(xq, {is_image}) && xqs.all(xq, !{is_image} || {})",
                bind("xu", value, &self.image_ends_on_target("xu"))
            ),
        )
    }
}

/// CSV the policy reads as the webhook does: no quotes, no line breaks.
fn csv_readable(x: &str) -> String {
    format!("!({x}.contains('\"') || {x}.contains('\\n') || {x}.contains('\\r'))")
}

/// A literal for a regex, escaped.
fn regex_literal(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
