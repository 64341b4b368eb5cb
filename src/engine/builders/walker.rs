//! The one argument walker every builder profile shares. It reads flags the
//! way Go's pflag does: `--flag=value` and `--flag value`, a shorthand with
//! its value glued on (`-dvalue`) or after `=`, and `--` ending the flags. A
//! flag known to take a value takes the next argument whatever it looks
//! like, so the value of `--build-arg --insecure` is never read as a flag.

/// Which list of the container an argument is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Command,
    Args,
}

impl List {
    pub fn field(self) -> &'static str {
        match self {
            List::Command => "command",
            List::Args => "args",
        }
    }
}

/// One argument, and where it is.
#[derive(Debug, Clone, Copy)]
pub struct Arg<'a> {
    pub list: List,
    pub index: usize,
    pub text: &'a str,
}

/// What an argument is, by the grammar.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Flag(Flag<'a>),
    /// An argument that is not a flag, or anything after `--`.
    Positional(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct Flag<'a> {
    /// Position in the walked arguments.
    pub at: usize,
    /// The flag's spelling up to its value: `--destination`, `-d`.
    pub name: &'a str,
    pub value: Option<Value<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Value<'a> {
    pub text: &'a str,
    /// Position in the walked arguments: the flag's own, or the next.
    pub at: usize,
    /// For a value in the flag's own argument, what stands before it
    /// (`--destination=`, `-d`).
    pub inline_prefix: Option<&'a str>,
}

/// Walks `args`; `takes_value` says which flag names take a value.
pub fn walk<'a>(args: &[Arg<'a>], takes_value: impl Fn(&str) -> bool) -> Vec<Item<'a>> {
    let mut items = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let text = args[i].text;
        if text == "--" {
            items.extend((i + 1..args.len()).map(Item::Positional));
            break;
        }
        if !text.starts_with('-') || text == "-" {
            items.push(Item::Positional(i));
            i += 1;
            continue;
        }
        let inline = |name: &'a str, value: &'a str, prefix: &'a str| Flag {
            at: i,
            name,
            value: Some(Value {
                text: value,
                at: i,
                inline_prefix: Some(prefix),
            }),
        };
        let flag = if let Some((name, value)) = text.split_once('=') {
            inline(name, value, &text[..=name.len()])
        } else if takes_value(text) {
            Flag {
                at: i,
                name: text,
                value: args.get(i + 1).map(|next| Value {
                    text: next.text,
                    at: i + 1,
                    inline_prefix: None,
                }),
            }
        } else if let Some((name, value)) = glued_shorthand(text).filter(|(n, _)| takes_value(n)) {
            inline(name, value, name)
        } else {
            Flag {
                at: i,
                name: text,
                value: None,
            }
        };
        i = match flag.value {
            Some(Value { at, .. }) => at + 1,
            None => i + 1,
        };
        items.push(Item::Flag(flag));
    }
    items
}

/// `-dvalue` as `-d` and `value`.
fn glued_shorthand(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    if bytes.len() <= 2 || bytes[1] == b'-' || !text.is_char_boundary(2) {
        return None;
    }
    Some(text.split_at(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn args(texts: &[&'static str]) -> Vec<Arg<'static>> {
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| Arg {
                list: List::Args,
                index,
                text,
            })
            .collect()
    }

    /// Each item as `name=value@at`, `name` or `#at` for a positional.
    fn shown(texts: &[&'static str]) -> Vec<String> {
        let args = args(texts);
        walk(&args, |name| {
            ["--destination", "-d", "--build-arg"].contains(&name)
        })
        .into_iter()
        .map(|item| match item {
            Item::Positional(at) => format!("#{at}"),
            Item::Flag(Flag {
                name, value: None, ..
            }) => name.to_owned(),
            Item::Flag(Flag {
                name,
                value: Some(value),
                ..
            }) => format!("{name}={}@{}", value.text, value.at),
        })
        .collect()
    }

    #[rstest]
    #[case::equals(&["--destination=a"], &["--destination=a@0"])]
    #[case::separate(&["--destination", "a"], &["--destination=a@1"])]
    #[case::shorthand_glued(&["-da"], &["-d=a@0"])]
    #[case::shorthand_equals(&["-d=a"], &["-d=a@0"])]
    #[case::value_that_looks_like_a_flag(&["--build-arg", "--insecure", "--insecure"], &["--build-arg=--insecure@1", "--insecure"])]
    #[case::boolean_then_positional(&["--insecure", "x"], &["--insecure", "#1"])]
    #[case::double_dash_ends_flags(&["--", "--destination", "a"], &["#1", "#2"])]
    #[case::dangling_value_flag(&["--destination"], &["--destination"])]
    #[case::lone_dash(&["-"], &["#0"])]
    #[case::unknown_shorthand_glued(&["-xvalue"], &["-xvalue"])]
    fn reads_flags_as_pflag_does(#[case] input: &[&'static str], #[case] expected: &[&str]) {
        assert_eq!(shown(input), expected);
    }
}
