//! A builder's arguments rewritten, as CEL: the same pflag walk as the
//! engine's, written once for every profile, which it reads from the
//! [`Tables`] variables, in three steps ([`ARGUMENTS`], [`VALUES`],
//! [`BUILDS`]) that bind their parts in order:
//!
//! - `xtr`, `xtv`, `xts`, `xti`, `xtm`: the running profile's tables;
//! - `xw`, `xb`, `xt`: the builder's arguments, which of them take a value,
//!   and where `--` ends the flags;
//! - `xds`: what each argument is (`describe`);
//! - `xf`, `xsub`, `xsi`, `xsw`: the subcommand, whether it takes images,
//!   and whether it is walked at all;
//! - `xvals`: each flag's value and image argument rewritten (the second
//!   step);
//! - `xreach`: whether every registry the command reaches is HTTPS
//!   (`reaches_only_https`);
//! - `xn`: each argument's new text, or none (`new_argument`);
//! - `xme`, `xmaps`: the registry-map entries, and the maps to add
//!   (`registry_maps`);
//! - the new `[command, args]` (`new_lists`).

use super::{bind, bind_list, csv::csv_readable, lit, lit_list, Exprs, Written, FALSE_VALUES};
use crate::engine::rules::IMAGE_TRANSPORTS;

/// Whether the argument `xa` at `xj` is the value of the flag before it: a
/// flag that takes a value, at an odd place in a run of such flags.
const CONSUMED: &str = "(xj > 0 && xb.charAt(xj - 1) == '1' && (xj - xb.substring(0, xj).lastIndexOf('0') - 1) % 2 == 1)";

/// One pass over `xn` says what happened: `c` for a change, `p` for a push
/// to a rewrite target, `a` for an image argument on one.
const SUMMARY: &str = "xw.transformList(xj, xa, (size(xn[xj]) == 0 || xn[xj][0] != xa ? 'c' : '') + (size(xn[xj]) > 1 && xn[xj][1] == 't' ? 'p' : '') + (size(xn[xj]) > 1 && xn[xj][1] == 'a' ? 'a' : '')).join('')";

/// `xme`: every `registry=mirrors` entry of the registry-map flags, read
/// once for the maps to add and for where the mirrors point; none for a
/// builder without the flag (`xtm` is `''`).
const MAP_ENTRIES: &str = "xtm == '' ? [] : xds.filter(xd, xd[1] == 'm' && 'vf'.contains(xd[0])).map(xd, xd[2]).join(';').split(';').filter(xm, xm.contains('='))";

/// Every mirror a registry-map flag maps a registry to.
const MAP_VALUES: &str = "xme.map(xm, xm.substring(xm.indexOf('=') + 1)).join(',').split(',')";

/// The index of the first positional argument (the subcommand), or -1.
const FIRST_POSITIONAL: &str =
    "xds.transformList(xj, xd, xd[0] == 'p' && xj != xt ? 'P' : '.').join('').indexOf('P')";

/// The index of the last positional argument after the subcommand, or -1.
const LAST_POSITIONAL: &str = "xds.transformList(xj, xd, xd[0] == 'p' && xj != xt && xj > xf ? 'P' : '.').join('').lastIndexOf('P')";

/// The container's own lists, unchanged.
const ORIGINAL: &str = "[(has(xc.command) ? xc.command : []), (has(xc.args) ? xc.args : [])]";

/// A profile's data, by the index `xps[0]` of the profile the container
/// runs: one walk reads all profiles, so the API server compiles it once.
pub(super) struct Tables;

impl Tables {
    /// The policy variables the walk reads, one list entry per profile.
    pub const ROLES: &'static str = "builderRoles";
    pub const VALUE_FLAGS: &'static str = "builderValueFlags";
    pub const SUBCOMMANDS: &'static str = "builderSubcommands";
    pub const IMAGE_ARGUMENTS: &'static str = "builderImageArguments";
    pub const REGISTRY_MAP: &'static str = "builderRegistryMap";
    pub const OWN_FLAGS: &'static str = "builderOwnFlags";
    pub const UNSAFE_FLAGS: &'static str = "builderUnsafeFlags";

    /// `body` with the running profile's tables bound: `xtr` its roles,
    /// `xtv` its value flags, `xts` its subcommands, `xti` the subcommands
    /// that take images, `xtm` its registry-map flag (or `''`).
    fn bound(body: &str) -> String {
        let of = |name: &str| format!("variables.{name}[xps[0]]");
        bind_list(
            "xtr",
            &of(Self::ROLES),
            &bind_list(
                "xtv",
                &of(Self::VALUE_FLAGS),
                &bind_list(
                    "xts",
                    &of(Self::SUBCOMMANDS),
                    &bind_list(
                        "xti",
                        &of(Self::IMAGE_ARGUMENTS),
                        &bind("xtm", &of(Self::REGISTRY_MAP), body),
                    ),
                ),
            ),
        )
    }

    /// The role letter of flag `x`, or `''`.
    fn role(x: &str) -> String {
        format!("({x} in xtr ? xtr[{x}] : '')")
    }

    /// Flag `x` takes a value (it has a role other than remove or TLS verify).
    fn takes_value(x: &str) -> String {
        format!("({x} in xtr && !'rt'.contains(xtr[{x}]))")
    }
}

/// The walk's three steps, each a policy variable, and so each one CEL
/// call with a cost limit of its own: reading the arguments, rewriting
/// the values in them, and writing the new lists.
pub const ARGUMENTS: &str = "buildArguments";
pub const VALUES: &str = "buildValues";
pub const BUILDS: &str = "builds";

impl Exprs<'_> {
    /// The walk's variables, in order, over the list of containers
    /// `containers`, for those where `wanted` (of `xc`) holds.
    pub fn build_variables(&self, containers: &str, wanted: &str) -> Vec<(String, String)> {
        vec![
            (
                ARGUMENTS.to_owned(),
                format!(
                    "({containers}).map(xc, {wanted} ? {} : [])",
                    self.build_arguments()
                ),
            ),
            (
                VALUES.to_owned(),
                format!(
                    "variables.{ARGUMENTS}.map(xread, {})",
                    self.argument_values()
                ),
            ),
            (
                BUILDS.to_owned(),
                format!(
                    "({containers}).transformList(xi, xc, {})",
                    bind_list(
                        "xread",
                        &format!("variables.{ARGUMENTS}[xi]"),
                        &bind_list("xvals", &format!("variables.{VALUES}[xi]"), &self.walk())
                    )
                ),
            ),
        ]
    }

    /// The first step, for the builder `xps = [profile, start]` of container
    /// `xc`: what its arguments are, `[xps, xw, xds, xt, xf, xsi, xsw]`.
    /// The later steps need no table of the profile but its registry-map
    /// flag.
    pub(super) fn read_arguments(&self) -> String {
        let mut body = bind(
            "xsub",
            "size(xts) > 0 && xf >= 0 ? xw[xf] : ''",
            "[dyn(xps), dyn(xw), dyn(xds), dyn(xt), dyn(xf), dyn(xsub in xti), \
             dyn(size(xts) == 0 || xsub in xts)]",
        );
        // Without subcommands `xsub` is `''`, and nothing reads `xf`.
        body = bind(
            "xf",
            &format!("size(xts) == 0 ? -1 : {FIRST_POSITIONAL}"),
            &body,
        );
        body = bind_list(
            "xds",
            &format!("xw.transformList(xj, xa, {})", describe()),
            &body,
        );
        let terminator = format!(
            "xw.transformList(xj, xa, xa == '--' && !{CONSUMED} ? 'T' : '.').join('').indexOf('T')"
        );
        body = bind("xt", &terminator, &body);
        body = bind("xb", "xw.map(xa, xa in xtv ? '1' : '0').join('')", &body);
        body = bind_list("xw", "xall.transformList(xg, xa, xg >= xs, xa)", &body);
        bind("xs", "xps[1]", &Tables::bound(&body))
    }

    /// The second step, for the first's entry `xread`: per argument, the
    /// new value of a flag (`new_flag_value`) or of an image argument
    /// (`image_argument`), else `['', '']`; `[]` for a subcommand that is
    /// not rewritten.
    pub(super) fn argument_values(&self) -> String {
        let value = format!(
            "'vf'.contains(xd[0]) ? ({}) : {} ? {} : ['', '']",
            self.new_flag_value(),
            is_image_argument("xd"),
            bind("xa", "xw[xj]", &self.image_argument())
        );
        let values = format!("xds.transformList(xj, xd, {value})");
        read(&format!("xsw ? {values} : []"))
    }

    /// The last step, for container `xc`, the first step's entry `xread`
    /// and the second's `xvals`: the new `[command, args]`, then the
    /// build's info.
    pub(super) fn walk(&self) -> String {
        let mut body = bind(
            "xsum",
            SUMMARY,
            &bind(
                "xchanged",
                "xsum.contains('c')",
                &bind(
                    "xpush",
                    "xsum.contains('p')",
                    &bind_list(
                        "xme",
                        MAP_ENTRIES,
                        &bind_list(
                            "xmaps",
                            &self.registry_maps(),
                            &format!("{} + [[{}]]", new_lists(), self.build_info()),
                        ),
                    ),
                ),
            ),
        );
        body = bind_list(
            "xn",
            &format!("xw.transformList(xj, xa, {})", self.new_argument()),
            &body,
        );
        body = bind("xreach", &reaches_only_https(), &body);
        body = bind(
            "xk",
            "(has(xc.command) ? size(xc.command) : 0)",
            &format!("xsw ? {body} : {ORIGINAL}"),
        );
        read(&bind(
            "xtm",
            &format!("variables.{}[xps[0]]", Tables::REGISTRY_MAP),
            &body,
        ))
    }

    /// Argument `xa` at `xj`: `[]` to drop it, else `[text, 't' if it now
    /// names a rewrite target]`.
    fn new_argument(&self) -> String {
        // A positional argument that is an image: after the subcommand,
        // when the subcommand takes images.
        let new_text = format!(
            "'vf'.contains(xd[0]) ? xvals[xj] : \
             {} ? [xvals[xj][0] != '' ? xvals[xj][0] : string(xa), xvals[xj][1] == 't' ? 'a' : ''] : \
             [string(xa), '']",
            is_image_argument("xd")
        );
        bind(
            "xd",
            "xds[xj]",
            &format!("({}) ? [] : {new_text}", self.dropped()),
        )
    }

    /// The argument goes: a TLS-weakening flag, a registry-valued one that
    /// names a rewrite source, or `--tls-verify=false` once `xreach`.
    fn dropped(&self) -> String {
        format!(
            "(xd[0] != 'v' && xd[1] == 'r') || \
             (xd[1] == 'g' && 'fvb'.contains(xd[0]) && {}) || \
             (xreach && xd[0] == 'f' && xd[1] == 't' && xd[2] in {})",
            self.names_source("xd[2]"),
            lit_list(FALSE_VALUES)
        )
    }

    /// `[new text, 't' if it now names a rewrite target]` of a flag's value
    /// `xd[2]`, written after `xd[3]`, by the flag's role; `xw[xj]` as it
    /// is where nothing changes.
    fn new_flag_value(&self) -> String {
        let as_flag = Written {
            prefix: "xd[3]",
            otherwise: "string(xw[xj])",
        };
        // `key=mirror,...;...`: every mirror on a rewrite source moves.
        let mirror = bind(
            "xvi",
            &self.location_info("xv"),
            "xvi[0] != '' ? xvi[0] : xv",
        );
        format!(
            "xd[1] == 'i' ? {} : \
             xd[1] == 'l' ? {} : \
             xd[1] == 'c' && {} ? {} : \
             xd[1] == 'm' ? [xd[3] + xd[2].split(';').map(xm, xm.contains('=') ? \
             xm.substring(0, xm.indexOf('=') + 1) + \
             xm.substring(xm.indexOf('=') + 1).split(',').map(xv, {mirror}).join(',') : xm).join(';'), ''] : \
             [string(xw[xj]), '']",
            self.image_written("xd[2]", &as_flag),
            self.location_written("xd[2]", &as_flag),
            csv_readable("xd[2]"),
            bind("xci", &self.csv_info("xd[2]"), "[xd[3] + xci[0], xci[1]]")
        )
    }

    /// `[new text or '', 't' if it names a rewrite target after its
    /// rewrite]` of the image argument `xa`. Transports other than
    /// `docker://` name no registry.
    fn image_argument(&self) -> String {
        format!(
            "({} ? ['', ''] : {})",
            other_transport(),
            bind(
                "xtd",
                "xa.startsWith('docker://') ? 'docker://' : ''",
                &bind(
                    "xri",
                    &self.image_info("xa.substring(size(xtd))"),
                    "[xri[0] != '' ? xtd + xri[0] : '', xri[1]]"
                )
            )
        )
    }

    /// `'<profile>|'` then `p` if the build reaches a rewrite target after its
    /// rewrite (a push, a cache, an image argument, or a registry map), `o` if
    /// a flag gives it a credential of its own, `u` if a flag makes a mount
    /// unsafe: what the credential step needs (the engine's `Build`).
    fn build_info(&self) -> String {
        let any_flag = |table: &str| {
            bind_list(
                "xtf",
                &format!("variables.{table}[xps[0]]"),
                "xds.exists(xd, xd[4] in xtf)",
            )
        };
        // A mirror on a rewrite target, or moved to one.
        let mapped_to_target = format!(
            "{MAP_VALUES}.exists(xmv, {})",
            bind("xvi", &self.location_info("xmv"), "xvi[1] == 't'")
        );
        format!(
            "string(xps[0]) + '|' + (xsum.contains('p') || xsum.contains('a') || size(xmaps) > 0 || {mapped_to_target} ? 'p' : '') + \
             ({} ? 'o' : '') + ({} ? 'u' : '')",
            any_flag(Tables::OWN_FLAGS),
            any_flag(Tables::UNSAFE_FLAGS)
        )
    }

    /// `--registry-map` for every internal registry not mapped yet, once the
    /// build changed or pushes to a rewrite target; none for a builder
    /// without the flag (`xtm` is `''`).
    fn registry_maps(&self) -> String {
        let keys = "xme.map(xm, xm.substring(0, xm.indexOf('=')))";
        let mut added = Vec::new();
        for rule in self
            .rules
            .rewrites
            .iter()
            .filter(|r| r.from_prefix.is_empty())
        {
            let text = format!("={}={}", rule.from_text, rule.rewrite_name(""));
            let mapped = bind(
                "xrd",
                "xm.lowerAscii()",
                &bind("xrh", Self::HOST_PORT, &Self::is_source(rule)),
            );
            added.push(format!(
                "(xkeys.exists(xm, {mapped}) ? [] : [xtm + {}])",
                lit(&text)
            ));
        }
        if added.is_empty() {
            return "[]".to_owned();
        }
        format!(
            "(xtm != '' && (xchanged || xpush) ? {} : [])",
            bind_list("xkeys", keys, &added.join(" + "))
        )
    }
}

/// `body` with the first step's entry `xread` bound (see
/// [`Exprs::read_arguments`]); `[]` for a container that runs no builder.
fn read(body: &str) -> String {
    // One list of one type (dyn), read back into the types the walk has.
    let mut body = bind("xs", "int(xps[1])", body);
    body = bind("xsw", "xread[6] == true", &body);
    body = bind("xsi", "xread[5] == true", &body);
    body = bind("xf", "int(xread[4])", &body);
    body = bind("xt", "int(xread[3])", &body);
    body = bind_list("xds", "xread[2]", &body);
    body = bind_list("xw", "xread[1]", &body);
    body = bind("xps", "xread[0]", &body);
    format!("(size(xread) == 0 ? [] : {body})")
}

/// `[kind, role, value, inline prefix, flag name]` of argument `xa` at
/// `xj`. Kinds: p positional, x the terminator, v a value taken from the
/// argument before, f a flag with its value inline, b a flag whose value is
/// the next argument, n a flag without a value. The name is `''` but for a
/// flag.
fn describe() -> String {
    let role_a = Tables::role("xa");
    let inline = bind(
        "xde",
        "xa.indexOf('=')",
        &bind(
            "xdn",
            "xa.substring(0, xde)",
            &format!(
                "['f', {}, xa.substring(xde + 1), xdn + '=', xdn]",
                Tables::role("xdn")
            ),
        ),
    );
    format!(
        "xt >= 0 && xj > xt ? ['p', '', '', '', ''] : \
         xj == xt ? ['x', '', '', '', ''] : \
         {CONSUMED} ? ['v', {role_before}, string(xa), '', ''] : \
         !(xa.startsWith('-') && xa != '-') ? ['p', '', '', '', ''] : \
         xa.contains('=') ? {inline} : \
         xb.charAt(xj) == '1' ? (xj + 1 < size(xw) ? ['b', {role_a}, string(xw[xj + 1]), '', string(xa)] : ['n', {role_a}, '', '', string(xa)]) : \
         size(xa) > 2 && xa.charAt(1) != '-' && {glued_takes} ? ['f', {role_glued}, xa.substring(2), xa.substring(0, 2), xa.substring(0, 2)] : \
         ['n', {role_a}, '', '', string(xa)]",
        role_before = Tables::role("xw[xj - 1]"),
        glued_takes = Tables::takes_value("xa.substring(0, 2)"),
        role_glued = Tables::role("xa.substring(0, 2)"),
    )
}

/// Argument `xj`, described by `xd`, is an image argument: a positional
/// after the subcommand, when the subcommand takes images.
fn is_image_argument(xd: &str) -> String {
    format!("({xd}[0] == 'p' && xj != xt && xj > xf && xsi)")
}

/// `xa` starts with a transport that names no registry.
fn other_transport() -> String {
    IMAGE_TRANSPORTS[1..]
        .iter()
        .map(|t| format!("xa.startsWith({})", lit(t)))
        .collect::<Vec<_>>()
        .join(" || ")
}

/// `xreach`: the last image argument after the subcommand is on a rewrite
/// target, so every registry the command reaches is HTTPS.
fn reaches_only_https() -> String {
    let last = bind("xl", LAST_POSITIONAL, "xl > xf && xvals[xl][1] == 't'");
    format!("(xsi && {last})")
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
