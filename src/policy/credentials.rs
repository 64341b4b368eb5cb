//! The build credential as CEL: the engine's `credentials` step, for the
//! policy. Each build that reaches a rewrite target and brings no
//! credential of its own gets the pull secret mounted where its builder
//! reads it, from one optional Secret volume under a free name.

use super::expr::{lit, lit_list, BUILDS};
use super::grammar;
use super::{Policy, AT, SPEC};
use crate::engine::rules::{
    CredentialSpec, CREDENTIAL_FILE, CREDENTIAL_VOLUME as VOLUME_NAME, SECRET_KEY,
};

/// How many volume names are tried when the Pod has a volume of ours' name
/// already (the engine tries until one is free).
const NAMES_TRIED: usize = 10;

/// A path's components as a pattern, `*` standing for one.
fn components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(|c| match c {
            "*" => "[^/]+".to_owned(),
            c => grammar::escape(c),
        })
        .collect()
}

/// A mount path that names `path` (slashes doubled or trailing allowed).
fn same_path(path: &str) -> String {
    format!("^/*{}/*$", components(path).join("/+"))
}

/// A mount path at or above `file`.
fn at_or_above(file: &str) -> String {
    let mut pattern = String::new();
    for (i, part) in components(file).iter().enumerate().rev() {
        let separator = if i == 0 { "" } else { "/+" };
        pattern = format!("(?:{separator}{part}{pattern})?");
    }
    format!("^/*{pattern}/*$")
}

/// A variable name against a pattern where `*` stands for any text.
fn name_matches(pattern: &str, x: &str) -> String {
    match pattern.split_once('*') {
        None => format!("{x} == {}", lit(pattern)),
        Some((head, tail)) => format!(
            "(size({x}) >= {} && {x}.startsWith({}) && {x}.endsWith({}))",
            head.len() + tail.len(),
            lit(head),
            lit(tail)
        ),
    }
}

fn any_name(patterns: &[String], x: &str) -> String {
    match patterns.is_empty() {
        true => "false".to_owned(),
        false => patterns
            .iter()
            .map(|p| name_matches(p, x))
            .collect::<Vec<_>>()
            .join(" || "),
    }
}

impl Policy<'_> {
    fn secret(&self) -> Option<&str> {
        self.rules.image_pull_secrets.first().map(String::as_str)
    }

    /// Whether any builder gets a credential at all.
    pub(super) fn has_credentials(&self) -> bool {
        self.secret().is_some() && self.rules.builders.iter().any(|b| b.credentials.is_some())
    }

    /// `credentialVolume`: the name of our volume, or `''`; and
    /// `credentials`: per container, `[mount path or '', variable or '',
    /// value]` for what it gets, `[]` for nothing.
    pub(super) fn credential_variables(&self) -> Vec<(String, String)> {
        let Some(secret) = self.secret() else {
            return Vec::new();
        };
        let spec = SPEC;
        let ours = format!(
            "(has({spec}.volumes) ? {spec}.volumes.filter(xv, has(xv.name) && xv.name.startsWith({}) && \
             has(xv.secret) && has(xv.secret.secretName) && xv.secret.secretName == {}).map(xv, xv.name) : []) + ['']",
            lit(VOLUME_NAME),
            lit(secret)
        );
        let mut decisions = String::new();
        for (index, profile) in self.rules.builders.iter().enumerate() {
            if let Some(credentials) = &profile.credentials {
                decisions.push_str(&format!(
                    // CEL's middle operand is no conditional: parenthesised.
                    "xinfo.startsWith('{index}|') ? ({}) : ",
                    decision(credentials)
                ));
            }
        }
        let per_container = format!(
            "size(variables.{BUILDS}[xi]) < 3 ? [] : [variables.{BUILDS}[xi][2][0]].map(xinfo, \
             !xinfo.contains('p') || xinfo.contains('o') || xinfo.contains('u') ? [] : ({decisions}[]))[0]"
        );
        vec![
            ("credentialVolume".into(), format!("({ours})[0]")),
            (
                "credentials".into(),
                format!(
                    "({}).transformList(xi, xc, {per_container})",
                    self.all_containers()
                ),
            ),
        ]
    }

    /// The volume (once, when the Pod has none of ours), then each
    /// container's mount and variable.
    pub(super) fn credential_mutation(&self) -> String {
        let Some(secret) = self.secret() else {
            return "[]".to_owned();
        };
        let spec = SPEC;
        let names: Vec<String> = (0..NAMES_TRIED)
            .map(|i| match i {
                0 => VOLUME_NAME.to_owned(),
                i => format!("{VOLUME_NAME}-{i}"),
            })
            .collect();
        let free = format!(
            "{}.filter(xn, !(has({spec}.volumes) && {spec}.volumes.exists(xv, has(xv.name) && xv.name == xn)))[0]",
            lit_list(&names)
        );
        // Every value of a map with values of several types is `dyn(...)`:
        // CEL's checker refuses the literal otherwise.
        let volume = format!(
            "{{'name': dyn(xvn), 'secret': dyn({{'secretName': dyn({}), 'optional': dyn(true), \
             'items': dyn([{{'key': {}, 'path': {}}}])}})}}",
            lit(secret),
            lit(SECRET_KEY),
            lit(CREDENTIAL_FILE)
        );
        let add_volume = format!(
            "variables.credentialVolume != '' || !variables.credentials.exists(xd, size(xd) > 0) ? [] : \
             has({spec}.volumes) \
             ? [JSONPatch{{op: 'add', path: {AT} + '/volumes/-', value: {volume}}}] \
             : [JSONPatch{{op: 'add', path: {AT} + '/volumes', value: [{volume}]}}]",
        );
        let per_container = self.per_list(|list, offset| {
            let d = format!("variables.credentials[{offset} + xi]");
            let at = self.pointer(list);
            let mount =
                format!("{{'name': dyn(xvn), 'mountPath': dyn({d}[0]), 'readOnly': dyn(true)}}");
            let env = format!("{{'name': {d}[1], 'value': {d}[2]}}");
            format!(
                "{{LIST}}.transformList(xi, xc, size({d}) > 0 && {d}[0] != '', has(xc.volumeMounts) \
                 ? JSONPatch{{op: 'add', path: {at} + string(xi) + '/volumeMounts/-', value: {mount}}} \
                 : JSONPatch{{op: 'add', path: {at} + string(xi) + '/volumeMounts', value: [{mount}]}}) + \
                 {{LIST}}.transformList(xi, xc, size({d}) > 0 && {d}[1] != '', has(xc.env) \
                 ? JSONPatch{{op: 'add', path: {at} + string(xi) + '/env/-', value: {env}}} \
                 : JSONPatch{{op: 'add', path: {at} + string(xi) + '/env', value: [{env}]}})"
            )
        });
        format!(
            "[variables.credentialVolume != '' ? variables.credentialVolume : {free}].map(xvn, \
             ({add_volume}) + {per_container})[0]"
        )
    }
}

/// For container `xc`: what it gets, or `[]` (its own credential, or a
/// form a mount could break: the engine's lines say which).
fn decision(credentials: &CredentialSpec) -> String {
    let mount_path = &credentials.mount_path;
    let is_our_mount = format!(
        "(variables.credentialVolume != '' && has(xm.name) && xm.name == variables.credentialVolume && \
         has(xm.mountPath) && xm.mountPath.matches({}))",
        lit(&same_path(mount_path))
    );
    let (env_name, env_value) = match credentials.env_value() {
        Some((name, value)) => (name.to_owned(), value),
        None => (String::new(), String::new()),
    };
    let is_our_env = match env_name.is_empty() {
        true => "false".to_owned(),
        false => format!(
            "(has(xe.name) && xe.name == {} && has(xe.value) && xe.value == {})",
            lit(&env_name),
            lit(&env_value)
        ),
    };
    let own_paths = match credentials.own_paths.is_empty() {
        true => "false".to_owned(),
        false => credentials
            .own_paths
            .iter()
            .map(|p| format!("xm.mountPath.matches({})", lit(&at_or_above(p))))
            .collect::<Vec<_>>()
            .join(" || "),
    };
    let envs = "(has(xc.env) ? xc.env : [])";
    let mounts = "(has(xc.volumeMounts) ? xc.volumeMounts : [])";
    let left_alone = [
        format!(
            "{envs}.exists(xe, has(xe.name) && ({}))",
            any_name(&credentials.unsafe_env, "xe.name")
        ),
        format!(
            "{envs}.exists(xe, has(xe.name) && !{is_our_env} && ({}))",
            any_name(&credentials.own_env, "xe.name")
        ),
        format!("{mounts}.exists(xm, has(xm.mountPath) && !{is_our_mount} && ({own_paths}))"),
        format!(
            "{mounts}.exists(xm, has(xm.mountPath) && !{is_our_mount} && xm.mountPath.matches({}))",
            lit(&same_path(mount_path))
        ),
        match env_name.is_empty() {
            true => "false".to_owned(),
            false => "has(xc.envFrom)".to_owned(),
        },
    ];
    let need_mount = format!(
        "{mounts}.exists(xm, {is_our_mount}) ? '' : {}",
        lit(mount_path)
    );
    let need_env = match env_name.is_empty() {
        true => "''".to_owned(),
        false => format!("{envs}.exists(xe, {is_our_env}) ? '' : {}", lit(&env_name)),
    };
    format!(
        "({}) ? [] : [[{need_mount}, {need_env}, {}]].map(xd, xd[0] == '' && xd[1] == '' ? [] : xd)[0]",
        left_alone.join(" || "),
        lit(&env_value)
    )
}
