//! Which builder a container runs, as CEL: its image, `command[0]`, or the
//! program a CI wrapper (Tekton, Argo) runs, and where its arguments start.

use super::{bind, bind_list, lit, Exprs};
use crate::engine::rules::Wrapper;
use crate::policy::grammar;

impl Exprs<'_> {
    /// The profile of container `xc`'s image, or -1.
    fn image_profile(&self) -> String {
        format!(
            "(has(xc.image) ? {} : -1)",
            self.profile_for_image("xc.image")
        )
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
                        // No program named: the image's own entrypoint.
                        "xe < 0 ? [{}, xsep + 1] : [{}, xsep + 1]",
                        self.image_profile(),
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
        bind_list(
            "xall",
            "(has(xc.command) ? xc.command : []) + (has(xc.args) ? xc.args : [])",
            &bind("xk", "(has(xc.command) ? size(xc.command) : 0)", body),
        )
    }

    /// What the arguments of the builder that container `xc` runs are
    /// (see [`Self::read_arguments`]), or `[]` when it runs none.
    pub(super) fn build_arguments(&self) -> String {
        Self::with_lists(&bind(
            "xps",
            &self.build_of(),
            &format!("(xps[0] < 0 ? [] : {})", self.read_arguments()),
        ))
    }
}
