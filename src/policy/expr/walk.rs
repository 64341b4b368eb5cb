//! One builder's arguments rewritten, as CEL: the same pflag walk as the
//! engine's, in named parts. `walk` binds them in order:
//!
//! - `xw`, `xb`, `xt`: the builder's arguments, which of them take a value,
//!   and where `--` ends the flags;
//! - `xds`: what each argument is (`describe`);
//! - `xf`, `xsub`, `xreach`: the subcommand, and whether every registry the
//!   command reaches is HTTPS (`reaches_only_https`);
//! - `xn`: each argument's new text, or none (`new_argument`);
//! - `xmaps`: the registry maps to add (`registry_maps`);
//! - the new `[command, args]` (`new_lists`).

use super::{bind, csv::csv_readable, lit, lit_list, Exprs, FALSE_VALUES};
use crate::engine::rules::{BuilderProfile, IMAGE_TRANSPORTS};

/// Whether the argument `xa` at `xj` is the value of the flag before it: a
/// flag that takes a value, at an odd place in a run of such flags.
const CONSUMED: &str = "(xj > 0 && xb.charAt(xj - 1) == '1' && (xj - xb.substring(0, xj).lastIndexOf('0') - 1) % 2 == 1)";

/// One pass over `xn` says what happened: `c` for a change, `p` for a push
/// to a rewrite target, `a` for an image argument on one.
const SUMMARY: &str = "xw.transformList(xj, xa, (size(xn[xj]) == 0 || xn[xj][0] != xa ? 'c' : '') + (size(xn[xj]) > 1 && xn[xj][1] == 't' ? 'p' : '') + (size(xn[xj]) > 1 && xn[xj][1] == 'a' ? 'a' : '')).join('')";

/// Every mirror a registry-map flag maps a registry to.
const MAP_VALUES: &str = "xds.filter(xd, xd[0] in ['v', 'f'] && xd[1] == 'm').map(xd, xd[2]).join(';').split(';').filter(xm, xm.contains('=')).map(xm, xm.substring(xm.indexOf('=') + 1)).join(',').split(',')";

/// The name of each flag the walk read (`''` for anything else).
const FLAG_NAMES: &str = "xds.transformList(xj, xd, xd[0] in ['b', 'n'] ? string(xw[xj]) : xd[0] == 'f' ? (xd[3].endsWith('=') ? xd[3].substring(0, size(xd[3]) - 1) : xd[3]) : '')";

/// The index of the first positional argument (the subcommand), or -1.
const FIRST_POSITIONAL: &str =
    "xds.transformList(xj, xd, xd[0] == 'p' && xj != xt ? 'P' : '.').join('').indexOf('P')";

/// The index of the last positional argument after the subcommand, or -1.
const LAST_POSITIONAL: &str = "xds.transformList(xj, xd, xd[0] == 'p' && xj != xt && xj > xf ? 'P' : '.').join('').lastIndexOf('P')";

/// The container's own lists, unchanged.
const ORIGINAL: &str = "[(has(xc.command) ? xc.command : []), (has(xc.args) ? xc.args : [])]";

/// The role map and value-flag set of one profile, by its index.
struct Tables {
    roles: String,
    value_flags: String,
}

impl Tables {
    fn of(index: usize) -> Self {
        Tables {
            roles: format!("variables.builder{index}Roles"),
            value_flags: format!("variables.builder{index}ValueFlags"),
        }
    }

    /// The role letter of flag `x`, or `''`.
    fn role(&self, x: &str) -> String {
        let roles = &self.roles;
        format!("({x} in {roles} ? {roles}[{x}] : '')")
    }

    /// Flag `x` takes a value (it has a role other than remove or TLS verify).
    fn takes_value(&self, x: &str) -> String {
        let roles = &self.roles;
        format!("({x} in {roles} && !({roles}[{x}] in ['r', 't']))")
    }
}

impl Exprs<'_> {
    /// One profile's walk over `xall[xs:]`, with `xps = [profile, start]`
    /// bound; the value is the new `[command, args]`.
    pub(super) fn walk(&self, index: usize, profile: &BuilderProfile) -> String {
        let tables = Tables::of(index);
        let has_subcommands = !profile.subcommands.is_empty();
        let has_image_arguments = !profile.image_arguments.is_empty();
        let has_tls = profile.flags.tls_verify_flag.is_some();

        let mut body = bind(
            "xsum",
            SUMMARY,
            &bind(
                "xchanged",
                "xsum.contains('c')",
                &bind(
                    "xpush",
                    "xsum.contains('p')",
                    &bind(
                        "xmaps",
                        &self.registry_maps(profile),
                        &format!("{} + [[{}]]", new_lists(), self.build_info(index, profile)),
                    ),
                ),
            ),
        );
        body = bind(
            "xn",
            &format!("xw.transformList(xj, xa, {})", self.new_argument(profile)),
            &body,
        );
        if has_tls {
            body = bind("xreach", &self.reaches_only_https(profile), &body);
        }
        if has_image_arguments {
            body = bind("xpa", &self.image_arguments(profile), &body);
        }
        if has_subcommands || has_image_arguments || has_tls {
            let subcommand = if has_subcommands {
                "xf >= 0 ? xw[xf] : ''"
            } else {
                "''"
            };
            body = bind("xf", FIRST_POSITIONAL, &bind("xsub", subcommand, &body));
            if has_subcommands {
                let in_subcommand = bind(
                    "xf",
                    FIRST_POSITIONAL,
                    &format!("xf >= 0 && xw[xf] in {}", lit_list(&profile.subcommands)),
                );
                body = format!("({in_subcommand} ? {body} : {ORIGINAL})");
            }
        }
        body = bind(
            "xds",
            &format!("xw.transformList(xj, xa, {})", describe(&tables)),
            &body,
        );
        let terminator = format!(
            "xw.transformList(xj, xa, xa == '--' && !{CONSUMED} ? 'T' : '.').join('').indexOf('T')"
        );
        body = bind("xt", &terminator, &body);
        let bit = format!("(xa in {} ? '1' : '0')", tables.value_flags);
        body = bind("xb", &format!("xw.map(xa, {bit}).join('')"), &body);
        body = bind("xw", "xall.transformList(xg, xa, xg >= xs, xa)", &body);
        bind("xs", "xps[1]", &body)
    }

    /// `xreach`: the last image argument after the subcommand is on a
    /// rewrite target, so every registry the command reaches is HTTPS.
    fn reaches_only_https(&self, profile: &BuilderProfile) -> String {
        let reach = format!(
            "xsub in {} && xl > xf && xpa[xl][1] == 't'",
            lit_list(&profile.image_arguments),
        );
        bind("xl", LAST_POSITIONAL, &reach)
    }

    /// Argument `xa` at `xj`: `[]` to drop it, else `[text, 't' if it now
    /// names a rewrite target]`.
    fn new_argument(&self, profile: &BuilderProfile) -> String {
        let mut new_text = format!(
            "xd[0] in ['v', 'f'] ? ({}) : ",
            self.new_flag_value(profile)
        );
        if !profile.image_arguments.is_empty() {
            // A positional argument that is an image: after the subcommand,
            // when the subcommand takes images.
            new_text.push_str(&format!(
                "{} ? [xpa[xj][0] != '' ? xpa[xj][0] : string(xa), xpa[xj][1] == 't' ? 'a' : ''] : ",
                is_image_argument("xd", profile)
            ));
        }
        new_text.push_str("[string(xa), '']");
        bind(
            "xd",
            "xds[xj]",
            &format!("({}) ? [] : {new_text}", self.dropped(profile)),
        )
    }

    /// The argument goes: a TLS-weakening flag, a registry-valued one that
    /// names a rewrite source, or `--tls-verify=false` once `xreach`.
    fn dropped(&self, profile: &BuilderProfile) -> String {
        let mut drop = vec![
            "(xd[0] != 'v' && xd[1] == 'r')".to_owned(),
            format!(
                "(xd[1] == 'g' && xd[0] in ['f', 'v', 'b'] && {})",
                self.names_source("xd[2]")
            ),
        ];
        if profile.flags.tls_verify_flag.is_some() {
            drop.push(format!(
                "(xreach && xd[0] == 'f' && xd[1] == 't' && xd[2] in {})",
                lit_list(FALSE_VALUES)
            ));
        }
        drop.join(" || ")
    }

    /// `[new text, 't' if it now names a rewrite target]` of a flag's value
    /// `xd[2]`, written after `xd[3]`, by the flag's role.
    fn new_flag_value(&self, profile: &BuilderProfile) -> String {
        let flags = &profile.flags;
        let info_of = |info: String| {
            bind(
                "xri",
                &info,
                "[xri[0] != '' ? xd[3] + xri[0] : string(xa), xri[1]]",
            )
        };
        let mut value_new = String::new();
        if !flags.image_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'i' ? {} : ",
                info_of(self.image_info("xd[2]"))
            ));
        }
        if !flags.location_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'l' ? {} : ",
                info_of(self.location_info("xd[2]"))
            ));
        }
        if !flags.csv_flags.is_empty() {
            value_new.push_str(&format!(
                "xd[1] == 'c' && {} ? {} : ",
                csv_readable("xd[2]"),
                bind("xci", &self.csv_info("xd[2]"), "[xd[3] + xci[0], xci[1]]")
            ));
        }
        if flags.registry_map_flag.is_some() {
            // `key=mirror,...;...`: every mirror on a rewrite source moves.
            let mirror = bind(
                "xvi",
                &self.location_info("xv"),
                "xvi[0] != '' ? xvi[0] : xv",
            );
            value_new.push_str(&format!(
                "xd[1] == 'm' ? [xd[3] + xd[2].split(';').map(xm, xm.contains('=') ? \
                 xm.substring(0, xm.indexOf('=') + 1) + \
                 xm.substring(xm.indexOf('=') + 1).split(',').map(xv, {mirror}).join(',') : xm).join(';'), ''] : "
            ));
        }
        value_new.push_str("[string(xa), '']");
        value_new
    }

    /// `xpa`: for each argument that is an image argument of the
    /// subcommand, `[new text or '', 't' if it names a rewrite target after
    /// its rewrite]`, else `['', '']`; each one parsed once. Transports other
    /// than `docker://` name no registry.
    fn image_arguments(&self, profile: &BuilderProfile) -> String {
        let info = format!(
            "(xa.startsWith('docker://') ? {} : {} ? ['', ''] : {})",
            bind(
                "xri",
                &self.image_info("xa.substring(9)"),
                "[xri[0] != '' ? 'docker://' + xri[0] : '', xri[1]]"
            ),
            other_transport(),
            self.image_info("xa")
        );
        format!(
            "xw.transformList(xj, xa, {} ? {info} : ['', ''])",
            is_image_argument("xds[xj]", profile)
        )
    }

    /// `'<profile>|'` then `p` if the build reaches a rewrite target after its
    /// rewrite (a push, a cache, an image argument, or a registry map), `o` if
    /// a flag gives it a credential of its own, `u` if a flag makes a mount
    /// unsafe: what the credential step needs (the engine's `Build`).
    pub(super) fn build_info(&self, index: usize, profile: &BuilderProfile) -> String {
        let any_flag = |flags: &[String]| match flags.is_empty() {
            true => "false".to_owned(),
            false => format!("xfl.exists(xf, xf in {})", lit_list(flags)),
        };
        let (own, unsafe_flags) = match &profile.credentials {
            Some(c) => (any_flag(&c.own_flags), any_flag(&c.unsafe_flags)),
            None => ("false".to_owned(), "false".to_owned()),
        };
        let mapped_to_target = match profile.flags.registry_map_flag.is_some() {
            false => "false".to_owned(),
            // A mirror on a rewrite target, or moved to one.
            true => format!(
                "{MAP_VALUES}.exists(xmv, {})",
                bind("xvi", &self.location_info("xmv"), "xvi[1] == 't'")
            ),
        };
        bind(
            "xfl",
            FLAG_NAMES,
            &format!(
                "'{index}|' + (xsum.contains('p') || xsum.contains('a') || size(xmaps) > 0 || {mapped_to_target} ? 'p' : '') + \
                 ({own} ? 'o' : '') + ({unsafe_flags} ? 'u' : '')"
            ),
        )
    }

    /// `--registry-map` for every internal registry not mapped yet, once the
    /// build changed or pushes to a rewrite target.
    fn registry_maps(&self, profile: &BuilderProfile) -> String {
        let Some(flag) = &profile.flags.registry_map_flag else {
            return "[]".to_owned();
        };
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
            return "[]".to_owned();
        }
        format!(
            "(xchanged || xpush ? {} : [])",
            bind("xkeys", keys, &added.join(" + "))
        )
    }
}

/// `[kind, role, value, inline prefix]` of argument `xa` at `xj`. Kinds: p
/// positional, x the terminator, v a value taken from the argument before,
/// f a flag with its value inline, b a flag whose value is the next
/// argument, n a flag without a value.
fn describe(tables: &Tables) -> String {
    let role_a = tables.role("xa");
    let inline = bind(
        "xe",
        "xa.indexOf('=')",
        &format!(
            "['f', {}, xa.substring(xe + 1), xa.substring(0, xe + 1)]",
            tables.role("xa.substring(0, xe)")
        ),
    );
    format!(
        "xt >= 0 && xj > xt ? ['p', '', '', ''] : \
         xj == xt ? ['x', '', '', ''] : \
         {CONSUMED} ? ['v', {role_before}, string(xa), ''] : \
         !(xa.startsWith('-') && xa != '-') ? ['p', '', '', ''] : \
         xa.contains('=') ? {inline} : \
         xb.charAt(xj) == '1' ? (xj + 1 < size(xw) ? ['b', {role_a}, string(xw[xj + 1]), ''] : ['n', {role_a}, '', '']) : \
         size(xa) > 2 && xa.charAt(1) != '-' && {glued_takes} ? ['f', {role_glued}, xa.substring(2), xa.substring(0, 2)] : \
         ['n', {role_a}, '', '']",
        role_before = tables.role("xw[xj - 1]"),
        glued_takes = tables.takes_value("xa.substring(0, 2)"),
        role_glued = tables.role("xa.substring(0, 2)"),
    )
}

/// Argument `xj`, described by `xd`, is an image argument: a positional
/// after the subcommand, when the subcommand takes images.
fn is_image_argument(xd: &str, profile: &BuilderProfile) -> String {
    format!(
        "({xd}[0] == 'p' && xj != xt && xj > xf && xsub in {})",
        lit_list(&profile.image_arguments)
    )
}

/// `xa` starts with a transport that names no registry.
fn other_transport() -> String {
    IMAGE_TRANSPORTS[1..]
        .iter()
        .map(|t| format!("xa.startsWith({})", lit(t)))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// The new `[command, args]`: arguments before the builder's own keep their
/// text, the builder's are `xn`'s, and the maps go where the builder's own
/// start.
fn new_lists() -> String {
    let own = |range: &str| format!("xn.transformList(xj, xe, size(xe) > 0 && {range}, xe[0])");
    let into_command = "(xs >= 1 && xs - 1 < xk)";
    format!(
        "[(xs == 0 ? [] : xc.command.transformList(xg, xa, xg < xs, xa)) + ({into_command} ? xmaps : []) + \
         (xs >= xk ? [] : {}), \
         (xs > xk ? xc.args.transformList(xg, xa, xg + xk < xs, xa) : []) + ({into_command} ? [] : xmaps) + {}]",
        own("xj + xs < xk"),
        own("xj + xs >= xk"),
    )
}
