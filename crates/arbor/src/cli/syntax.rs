//! How zkCli's commands are written: their syntax lines, their options, and the split of a
//! line's words into options and arguments.
//!
//! Options follow Apache commons-cli as zkCli uses it: they may come anywhere among the
//! arguments (`set /a x -v 3`), boolean flags may be grouped (`create -es /a`), a value may be
//! attached (`-v3`), and `--` ends the options. A word that is a negative number is an argument,
//! so `set /a -5` stores "-5".

use std::collections::BTreeMap;

use super::command::ParseError;
use super::path::validate_path;

/// The commands, one variant each, so that dispatch is one `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    AddAuth,
    Config,
    Create,
    Delete,
    DeleteAll,
    DelQuota,
    Get,
    GetAcl,
    GetAllChildrenNumber,
    GetEphemerals,
    Help,
    ListQuota,
    Ls,
    Quit,
    Reconfig,
    Set,
    SetAcl,
    SetQuota,
    Stat,
    Sync,
    WhoAmI,
}

/// How one command is written.
pub(crate) struct Spec {
    /// Which command.
    pub(crate) kind: Kind,
    /// Its name, the first word of the line.
    pub(crate) name: &'static str,
    /// Its syntax line, for `help` and usage errors.
    pub(crate) syntax: &'static str,
    /// Letters of the boolean options.
    flags: &'static str,
    /// Letters of the options that take a value.
    valued: &'static str,
    positionals_min: usize,
    positionals_max: usize,
}

/// zkCli's syntax line of `reconfig`.
pub(crate) const RECONFIG_SYNTAX: &str = "reconfig [-s] [-v version] [[-file path] | \
     [-members serverID=host:port1:port2;port3[,...]*]] | [-add \
     serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]";

/// Every command, in the order `help` lists them (zkCli's: sorted, case-sensitive).
const SPECS: &[Spec] = &[
    spec(
        Kind::AddAuth,
        "addauth",
        "addauth scheme auth",
        "",
        "",
        1,
        2,
    ),
    spec(Kind::Config, "config", "config [-c] [-s]", "cs", "", 0, 0),
    spec(
        Kind::Create,
        "create",
        "create [-s] [-e] [-c] [-t ttl] path [data] [acl]",
        "sec",
        "t",
        1,
        3,
    ),
    spec(
        Kind::Delete,
        "delete",
        "delete [-v version] path",
        "",
        "v",
        1,
        1,
    ),
    spec(
        Kind::DeleteAll,
        "deleteall",
        "deleteall path [-b batch size]",
        "",
        "b",
        1,
        1,
    ),
    spec(
        Kind::DelQuota,
        "delquota",
        "delquota [-n|-b|-N|-B] path",
        "nbNB",
        "",
        1,
        1,
    ),
    spec(Kind::Get, "get", "get [-s] [-w] path", "sw", "", 1, 1),
    spec(Kind::GetAcl, "getAcl", "getAcl [-s] path", "s", "", 1, 1),
    spec(
        Kind::GetAllChildrenNumber,
        "getAllChildrenNumber",
        "getAllChildrenNumber path",
        "",
        "",
        1,
        1,
    ),
    spec(
        Kind::GetEphemerals,
        "getEphemerals",
        "getEphemerals [path]",
        "",
        "",
        0,
        1,
    ),
    spec(Kind::Help, "help", "help", "", "", 0, 0),
    spec(Kind::ListQuota, "listquota", "listquota path", "", "", 1, 1),
    spec(Kind::Ls, "ls", "ls [-s] [-w] [-R] path", "swR", "", 1, 1),
    spec(Kind::Quit, "quit", "quit", "", "", 0, 0),
    spec(Kind::Reconfig, "reconfig", RECONFIG_SYNTAX, "s", "v", 0, 0),
    spec(
        Kind::Set,
        "set",
        "set [-s] [-v version] path data",
        "s",
        "v",
        2,
        2,
    ),
    spec(
        Kind::SetAcl,
        "setAcl",
        "setAcl [-s] [-v version] [-R] path acl",
        "sR",
        "v",
        2,
        2,
    ),
    spec(
        Kind::SetQuota,
        "setquota",
        "setquota -n|-b|-N|-B val path",
        "",
        "nbNB",
        1,
        1,
    ),
    spec(Kind::Stat, "stat", "stat [-w] path", "w", "", 1, 1),
    spec(Kind::Sync, "sync", "sync path", "", "", 1, 1),
    spec(Kind::WhoAmI, "whoami", "whoami", "", "", 0, 0),
];

const fn spec(
    kind: Kind,
    name: &'static str,
    syntax: &'static str,
    flags: &'static str,
    valued: &'static str,
    positionals_min: usize,
    positionals_max: usize,
) -> Spec {
    Spec {
        kind,
        name,
        syntax,
        flags,
        valued,
        positionals_min,
        positionals_max,
    }
}

/// The syntax line of every command, in `help` order.
pub(crate) fn command_syntaxes() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|spec| spec.syntax)
}

/// The spec of the command called `name` (case-sensitive, as zkCli).
pub(crate) fn find_spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|spec| spec.name == name)
}

/// The options and arguments of one command line, as commons-cli splits them.
pub(crate) struct Options {
    /// Option letter to its value (`None` for a boolean flag).
    given: BTreeMap<char, Option<String>>,
    positionals: Vec<String>,
}

impl Options {
    /// Splits the words after the command name into options and arguments, and checks the
    /// number of arguments.
    ///
    /// # Errors
    /// [`ParseError::Option`] for an unknown option or one missing its value,
    /// [`ParseError::Usage`] for too few or too many arguments.
    pub(crate) fn parse(spec: &Spec, words: &[String]) -> Result<Options, ParseError> {
        let option_error = |problem: String| ParseError::Option {
            problem,
            syntax: spec.syntax,
        };
        let mut given = BTreeMap::new();
        let mut positionals = Vec::new();
        let mut options_ended = false;
        let mut words = words.iter();
        while let Some(word) = words.next() {
            if options_ended || !looks_like_option(word) {
                positionals.push(word.clone());
                continue;
            }
            if word == "--" {
                options_ended = true;
                continue;
            }
            let letters = &word[1..];
            for (index, letter) in letters.char_indices() {
                if spec.flags.contains(letter) {
                    given.insert(letter, None);
                } else if spec.valued.contains(letter) {
                    let attached = &letters[index + letter.len_utf8()..];
                    let value = if attached.is_empty() {
                        words.next().cloned().ok_or_else(|| {
                            option_error(format!("Missing argument for option: {letter}"))
                        })?
                    } else {
                        attached.to_owned()
                    };
                    given.insert(letter, Some(value));
                    break;
                } else {
                    return Err(option_error(format!("Unrecognized option: {word}")));
                }
            }
        }
        if positionals.len() < spec.positionals_min || positionals.len() > spec.positionals_max {
            return Err(ParseError::Usage {
                syntax: spec.syntax,
            });
        }
        Ok(Options { given, positionals })
    }

    /// Whether the option `letter` was given.
    pub(crate) fn flag(&self, letter: char) -> bool {
        self.given.contains_key(&letter)
    }

    /// The value of the option `letter`, if given.
    pub(crate) fn value(&self, letter: char) -> Option<&str> {
        self.given.get(&letter).and_then(|value| value.as_deref())
    }

    /// The argument at `index`, if given.
    pub(crate) fn positional(&self, index: usize) -> Option<&str> {
        self.positionals.get(index).map(String::as_str)
    }

    /// The path argument at `index`, checked. Only called for indexes below the spec's minimum.
    pub(crate) fn path(&self, index: usize, sequential: bool) -> Result<String, ParseError> {
        let path = self.positional(index).unwrap_or_default();
        validate_path(path, sequential).map_err(ParseError::Invalid)?;
        Ok(path.to_owned())
    }

    /// `-v version`, with the wording zkCli uses for its other integer options.
    pub(crate) fn version(&self) -> Result<Option<i32>, ParseError> {
        self.value('v')
            .map(|text| {
                text.parse::<i32>()
                    .map_err(|_| ParseError::Invalid("-v argument must be an int value".to_owned()))
            })
            .transpose()
    }
}

/// A word that commons-cli would read as an option: a leading dash, not a lone dash, not a
/// negative number.
fn looks_like_option(word: &str) -> bool {
    let Some(rest) = word.strip_prefix('-') else {
        return false;
    };
    let negative_number = !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
        && rest.parse::<f64>().is_ok();
    !rest.is_empty() && !negative_number
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str, line: &str) -> Result<Options, ParseError> {
        let spec = find_spec(name).unwrap_or_else(|| panic!("no command {name}"));
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        Options::parse(spec, &words)
    }

    #[test]
    fn flags_group_and_values_attach_or_follow() {
        let options = split("set", "-sv3 /a x").unwrap_or_else(|e| panic!("{e}"));
        assert!(options.flag('s'));
        assert_eq!(options.value('v'), Some("3"));
        assert_eq!(
            (options.positional(0), options.positional(1)),
            (Some("/a"), Some("x"))
        );
        let options = split("set", "/a x -v 3").unwrap_or_else(|e| panic!("{e}"));
        assert!(!options.flag('s'));
        assert_eq!(options.value('v'), Some("3"));
    }

    #[test]
    fn what_is_not_an_option() {
        assert!(!looks_like_option("-"));
        assert!(!looks_like_option("-5"));
        assert!(!looks_like_option("-0.5"));
        assert!(!looks_like_option("x-y"));
        assert!(looks_like_option("-s"));
        assert!(looks_like_option("--"));
        assert!(looks_like_option("-inf"));
        let options = split("set", "-- /a -s").unwrap_or_else(|e| panic!("{e}"));
        assert!(!options.flag('s'));
        assert_eq!(options.positional(1), Some("-s"));
    }

    #[test]
    fn help_lists_every_command_once_in_sorted_order() {
        let names: Vec<&str> = SPECS.iter().map(|spec| spec.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for spec in SPECS {
            assert!(spec.syntax.starts_with(spec.name), "{}", spec.syntax);
            assert!(
                spec.positionals_min <= spec.positionals_max,
                "{}",
                spec.name
            );
        }
    }
}
