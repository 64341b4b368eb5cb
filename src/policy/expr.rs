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
use crate::engine::rules::{BuilderProfile, RewriteRule, Rules, Wrapper, IMAGE_TRANSPORTS};

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

    fn is_target(&self) -> String {
        let mut targets: Vec<String> = Vec::new();
        for rule in &self.rules.rewrites {
            let target = Self::is_domain(&rule.to_host, rule.to_port);
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
        targets.join(" || ")
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

    /// Which rule (its index, as text) matches the domain in `xrh` and the
    /// rest in `xrr`, else `'t'` for a rewrite target, else `''`. First match
    /// wins, as in the engine. `ends` are the characters that may follow a
    /// path prefix.
    fn kind(&self, ends: &[&str]) -> String {
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
                Self::is_source(rule)
            ));
        }
        format!("({chain}({}) ? 't' : '')", self.is_target())
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
        // Name (domain and path) at most 255 characters.
        let name_fits = bind(
            "xrn",
            "xrx.contains('@') ? xrx.substring(0, xrx.indexOf('@')) : xrx",
            "(xrn.lastIndexOf(':') > xrn.lastIndexOf('/') ? xrn.lastIndexOf(':') : size(xrn)) <= 255",
        );
        let decide = format!(
            "xrk == '' ? ['', ''] : !(xrr.matches(variables.imageRest) && {name_fits}) ? ['', ''] : \
             xrk == 't' ? ['', 't'] : [{}, 't']",
            self.new_text(|skip| format!("xrx.substring(xrs + {skip})"))
        );
        let body = bind(
            "xrd",
            "xrx.substring(0, xrs).lowerAscii()",
            &bind(
                "xrh",
                Self::HOST_PORT,
                &bind(
                    "xrr",
                    "xrx.substring(xrs + 1)",
                    &bind("xrk", &self.kind(&["", "/", ":", "@"]), &decide),
                ),
            ),
        );
        bind(
            "xrx",
            &format!("string({x})"),
            &bind(
                "xrs",
                "xrx.indexOf('/')",
                &format!("xrs <= 0 ? ['', ''] : {body}"),
            ),
        )
    }

    /// As [`Self::image_info`], for a registry location (`host[:port][/path]`).
    fn location_info(&self, x: &str) -> String {
        let decide = format!(
            "xrk == '' ? ['', ''] : !(xrs < 0 || xrr.matches(variables.locationRest)) ? ['', ''] : \
             xrk == 't' ? ['', 't'] : [{}, 't']",
            self.new_text(|skip| format!("(xrs < 0 ? '' : xrx.substring(xrs + {skip}))"))
        );
        let body = bind(
            "xrd",
            "(xrs < 0 ? xrx : xrx.substring(0, xrs)).lowerAscii()",
            &bind(
                "xrh",
                Self::HOST_PORT,
                &bind(
                    "xrr",
                    "xrs < 0 ? '' : xrx.substring(xrs + 1)",
                    &bind("xrk", &self.kind(&["", "/"]), &decide),
                ),
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

    /// The patterns, as policy variables: `(name, expression)`.
    pub fn pattern_variables(&self) -> Vec<(String, String)> {
        vec![
            ("imageRest".into(), lit(&grammar::image_rest())),
            ("locationRest".into(), lit(&grammar::location_rest())),
        ]
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

    /// The role map of a profile, as a policy variable.
    pub fn role_map(profile: &BuilderProfile) -> String {
        let entries: Vec<String> = Self::roles(profile)
            .iter()
            .map(|(flag, role)| format!("{}: '{role}'", lit(flag)))
            .collect();
        format!("{{{}}}", entries.join(", "))
    }

    /// The flags of a profile that take the next argument as their value
    /// when written alone, as a policy variable: one lookup tells them.
    pub fn value_flags(profile: &BuilderProfile) -> String {
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
                .map(|r| format!("{x}.matches({})", lit(&grammar::repository(r))))
                .collect();
            chain.push_str(&format!("({}) ? {index} : ", any.join(" || ")));
        }
        format!("({chain}-1)")
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
                let pattern = format!("(?s)^-*{}(?:=.*)?$", grammar::escape(name));
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
        let bit = format!("(xa in variables.builder{index}ValueFlags ? '1' : '0')");
        let consumed = "(xj > 0 && xb.charAt(xj - 1) == '1' && (xj - xb.substring(0, xj).lastIndexOf('0') - 1) % 2 == 1)";
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
        let has_tls = profile.flags.tls_verify_flag.is_some();

        // `[new text, 't' if it now names a rewrite target]` of a flag's
        // value `xd[2]`, written after `xd[3]`.
        let mut value_new = String::new();
        let info_of = |info: String| {
            bind(
                "xri",
                &info,
                "[xri[0] != '' ? xd[3] + xri[0] : string(xa), xri[1]]",
            )
        };
        if !profile.flags.image_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'i' ? {} : ",
                info_of(self.image_info("xd[2]"))
            ));
        }
        if !profile.flags.location_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'l' ? {} : ",
                info_of(self.location_info("xd[2]"))
            ));
        }
        if !profile.flags.csv_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'c' && {} ? {} : ",
                csv_readable("xd[2]"),
                bind("xci", &self.csv_info("xd[2]"), "[xd[3] + xci[0], xci[1]]")
            ));
        }
        value_new.push_str("[string(xa), '']");

        // Every transport but `docker://` names no registry.
        let other_transport = IMAGE_TRANSPORTS[1..]
            .iter()
            .map(|t| format!("xa.startsWith({})", lit(t)))
            .collect::<Vec<_>>()
            .join(" || ");
        let image_argument_new = format!(
            "(xa.startsWith('docker://') ? {} : {other_transport} ? string(xa) : {})",
            bind(
                "xri",
                &self.image_info("xa.substring(9)"),
                "xri[0] != '' ? 'docker://' + xri[0] : string(xa)"
            ),
            bind(
                "xri",
                &self.image_info("xa"),
                "xri[0] != '' ? xri[0] : string(xa)"
            )
        );
        let image_argument_on_target = format!(
            "(xa.startsWith('docker://') ? {}[1] == 't' : {other_transport} ? false : {}[1] == 't')",
            self.image_info("xa.substring(9)"),
            self.image_info("xa")
        );
        // A positional argument that is an image: after the subcommand,
        // when the subcommand takes images.
        let is_image_argument = format!(
            "(xd[0] == 'p' && xj != xt && xj > xf && xsub in {})",
            lit_list(&profile.image_arguments)
        );

        // [] to drop the argument; [text, pushes] to keep it.
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
        let mut new_text = format!("xd[0] in ['v', 'f'] ? ({value_new}) : ");
        if has_image_arguments {
            new_text.push_str(&format!(
                "{is_image_argument} ? [{image_argument_new}, ''] : "
            ));
        }
        new_text.push_str("[string(xa), '']");
        let new_item = bind(
            "xd",
            "xds[xj]",
            &format!("({}) ? [] : {new_text}", drop.join(" || ")),
        );
        // `--registry-map` for every internal registry not mapped yet.
        let maps = match &profile.flags.registry_map_flag {
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
                    let text = format!("{flag}={}={}", rule.from_text, rule.rewrite_name(""));
                    let mapped = bind(
                        "xrd",
                        "xm.lowerAscii()",
                        &bind("xrh", Self::HOST_PORT, &Self::is_source(rule)),
                    );
                    added.push(format!(
                        "(xkeys.exists(xm, {mapped}) ? [] : [{}])",
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
        // Arguments before the builder's own keep their text; the builder's
        // are `xn`'s; the maps go where the builder's own start.
        let own = |range: &str| format!("xn.transformList(xj, xe, size(xe) > 0 && {range}, xe[0])");
        let into_command = "(xs >= 1 && xs - 1 < xk)";
        let result = format!(
            "[(xs == 0 ? [] : xc.command.transformList(xg, xa, xg < xs, xa)) + ({into_command} ? xmaps : []) + \
             (xs >= xk ? [] : {}), \
             (xs > xk ? xc.args.transformList(xg, xa, xg + xk < xs, xa) : []) + ({into_command} ? [] : xmaps) + {}]",
            own("xj + xs < xk"),
            own("xj + xs >= xk"),
        );
        // One pass says what happened: c for a change, p for a push.
        let summary = "xw.transformList(xj, xa, (size(xn[xj]) == 0 || xn[xj][0] != xa ? 'c' : '') + (size(xn[xj]) > 1 && xn[xj][1] == 't' ? 'p' : '')).join('')";
        let mut body = bind(
            "xsum",
            summary,
            &bind(
                "xchanged",
                "xsum.contains('c')",
                &bind(
                    "xpush",
                    "xsum.contains('p')",
                    &bind("xmaps", &maps, &result),
                ),
            ),
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
                bind("xa", "string(xw[xl])", &image_argument_on_target)
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

    /// `[new text, 't' if every image ends on a rewrite target]` of CSV
    /// value `x`: its images rewritten, and `registry.insecure=true` dropped
    /// once every image is on the HTTPS registry.
    fn csv_info(&self, x: &str) -> String {
        let is_image = Self::csv_image_key("xq");
        let infos = format!(
            "xqs.map(xq, {is_image} ? {} : ['', ''])",
            self.image_info("xq.substring(xq.indexOf('=') + 1)")
        );
        let insecure = "xqs.transformList(xj, xq, xq.contains('=') && xq.substring(0, xq.indexOf('=')).lowerAscii() == 'registry.insecure' && xq.substring(xq.indexOf('=') + 1) == 'true' ? 'I' : '.').join('').lastIndexOf('I')";
        let all_on_target = format!("xqs.all(xj, xq, !{is_image} || xqi[xj][1] == 't')");
        let result = "[xqs.transformList(xj, xq, !(xqhttps && xj == xins), xqi[xj][0] != '' ? xq.substring(0, xq.indexOf('=') + 1) + xqi[xj][0] : xq).join(','), xqhttps ? 't' : '']";
        bind(
            "xqs",
            &Self::csv_fields(x),
            &bind(
                "xqi",
                &infos,
                &bind(
                    "xqhttps",
                    &format!("xqs.exists(xq, {is_image}) && {all_on_target}"),
                    &bind("xins", insecure, result),
                ),
            ),
        )
    }
}

/// CSV the policy reads as the webhook does: no quotes, no line breaks.
fn csv_readable(x: &str) -> String {
    format!("!({x}.contains('\"') || {x}.contains('\\n') || {x}.contains('\\r'))")
}
