//! zkCli's commands, and the parsing of a line's words into a [`Command`].

use std::time::Duration;

use thiserror::Error;
use zookeeper_client::{Acl, CreateMode};

use super::acl::parse_acl_list;
use super::quota::QuotaLimit;
use super::syntax::{Kind, Options, RECONFIG_SYNTAX, find_spec};

/// Where ZooKeeper keeps the cluster's membership.
pub(crate) const CONFIG_NODE: &str = "/zookeeper/config";

/// Nodes deleted per `multi` request by `deleteall` when `-b` is not given (zkCli's default).
pub(crate) const DELETEALL_BATCH_SIZE_DEFAULT: u32 = 1000;

/// The longest TTL ZooKeeper can encode: 40 bits of milliseconds (`EphemeralType.TTL`).
const TTL_MS_MAX: i64 = 0xFF_FFFF_FFFF;

/// One command of the shell with its checked arguments. Paths have passed
/// `validate_path`, ACLs [`parse_acl_list`], numbers their range checks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// `ls [-s] [-w] [-R] path`: children (sorted), optionally the stat, or the whole subtree.
    Ls {
        /// The node.
        path: String,
        /// Also print the node's stat.
        stat: bool,
        /// Leave a child watch (on every node of the subtree with `-R`).
        watch: bool,
        /// Print every path of the subtree, depth first.
        recursive: bool,
    },
    /// `get [-s] [-w] path`: the data, optionally the stat.
    Get {
        /// The node.
        path: String,
        /// Also print the stat.
        stat: bool,
        /// Leave a data watch.
        watch: bool,
    },
    /// `set [-s] [-v version] path data`.
    Set {
        /// The node.
        path: String,
        /// The new data, as UTF-8.
        data: String,
        /// Print the new stat.
        stat: bool,
        /// The data version the node must have; any version when absent.
        version: Option<i32>,
    },
    /// `create [-s] [-e] [-c] [-t ttl] path [data] [acl]`.
    Create {
        /// The node, or the prefix of a sequential node.
        path: String,
        /// The data, as UTF-8; empty when not given.
        data: String,
        /// The ACL; `world:anyone:cdrwa` when not given.
        acl: Option<Vec<Acl>>,
        /// Persistent, ephemeral, sequential or container.
        mode: CreateMode,
        /// Invariant: only with [`CreateMode::Persistent`] or
        /// [`CreateMode::PersistentSequential`], and within (0, 2^40) ms.
        ttl: Option<Duration>,
    },
    /// `delete [-v version] path`.
    Delete {
        /// The node.
        path: String,
        /// The data version the node must have; any version when absent.
        version: Option<i32>,
    },
    /// `deleteall path [-b batch size]`: the node and its whole subtree, leaves first.
    DeleteAll {
        /// The root of the subtree.
        path: String,
        /// Invariant: at least 1. Deletes sent per `multi` request.
        batch_size: u32,
    },
    /// `stat [-w] path`.
    Stat {
        /// The node.
        path: String,
        /// Leave an exists watch (which also fires when a missing node is created).
        watch: bool,
    },
    /// `getAcl [-s] path`.
    GetAcl {
        /// The node.
        path: String,
        /// Also print the stat.
        stat: bool,
    },
    /// `setAcl [-s] [-v version] [-R] path acl`.
    SetAcl {
        /// The node.
        path: String,
        /// The new ACL.
        acl: Vec<Acl>,
        /// Print the new stat (ignored with `-R`, as zkCli does).
        stat: bool,
        /// The ACL version the node(s) must have; any version when absent.
        version: Option<i32>,
        /// Set the ACL on every node of the subtree.
        recursive: bool,
    },
    /// `addauth scheme auth`: adds an identity to this session.
    AddAuth {
        /// The scheme, e.g. `digest`.
        scheme: String,
        /// The credentials, e.g. `user:password`; empty when not given.
        auth: String,
    },
    /// `sync path`: waits until the connected server is as recent as the leader.
    Sync {
        /// The node the sync is about.
        path: String,
    },
    /// `whoami`: the identities of this session.
    WhoAmI,
    /// `setquota -n|-b|-N|-B val path`: sets one limit of the quota on `path`.
    SetQuota {
        /// The quota'd node.
        path: String,
        /// Which limit.
        limit: QuotaLimit,
        /// Its value.
        value: i64,
    },
    /// `listquota path`: the quota on `path` and the subtree's current use.
    ListQuota {
        /// The quota'd node.
        path: String,
    },
    /// `delquota [-n|-b|-N|-B] path`: unsets one limit, or removes the whole quota.
    DelQuota {
        /// The quota'd node.
        path: String,
        /// The limit to unset; none: the whole quota.
        limit: Option<QuotaLimit>,
    },
    /// `config [-c] [-s]`: the cluster's membership as `/zookeeper/config` holds it.
    Config {
        /// Print only the version and the client connect string.
        client_only: bool,
        /// Also print the config node's stat.
        stat: bool,
    },
    /// `reconfig ...`: changes the membership (ZooKeeper's `reconfig` operation).
    Reconfig {
        /// Which servers join or leave, or the whole new membership.
        update: ReconfigUpdate,
        /// The config version (a zxid, in hex as `/zookeeper/config` shows it) the change
        /// applies to; any version when absent.
        version: Option<i64>,
        /// Also print the config node's new stat.
        stat: bool,
    },
    /// `getEphemerals [path]`: this session's ephemeral nodes under `path` (default `/`).
    GetEphemerals {
        /// The path prefix.
        path: String,
    },
    /// `getAllChildrenNumber path`: the number of nodes below `path`.
    GetAllChildrenNumber {
        /// The node.
        path: String,
    },
    /// `help`: the list of commands.
    Help,
    /// `quit`: ends the shell.
    Quit,
}

/// Why a line is not a command the shell can run. Each message is one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum ParseError {
    /// The first word names no command (zkCli's wording).
    #[error("Command not found: {name}")]
    NotFound {
        /// The word.
        name: String,
    },
    /// Too few or too many arguments.
    #[error("usage: {syntax}")]
    Usage {
        /// The command's syntax.
        syntax: &'static str,
    },
    /// An unknown option, or an option without its value.
    #[error("{problem}; usage: {syntax}")]
    Option {
        /// What is wrong, in commons-cli's words (`Unrecognized option: -z`).
        problem: String,
        /// The command's syntax.
        syntax: &'static str,
    },
    /// A bad path, ACL, number or combination of flags, in zkCli's words.
    #[error("{0}")]
    Invalid(String),
}

/// A membership change as `reconfig` states it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ReconfigUpdate {
    /// `-add` and `-remove`: servers that join (`id=host:peer:election[:role][;client]`) and
    /// ids that leave.
    Incremental {
        /// Server lines of the joining servers.
        add: Vec<String>,
        /// Ids of the leaving servers.
        remove: Vec<String>,
    },
    /// `-members`: the whole new membership.
    Members(Vec<String>),
    /// `-file`: the whole new membership from the `server.N=` lines of a file.
    File(String),
}

impl Command {
    /// Parses the words of one line (the first is the command name).
    ///
    /// # Errors
    /// [`ParseError`] with a one-line message when the name is unknown, the arguments do not
    /// fit the syntax, or a path, ACL or number is invalid.
    pub(crate) fn parse(words: &[String]) -> Result<Command, ParseError> {
        let Some((name, arguments)) = words.split_first() else {
            return Err(ParseError::Invalid("No command entered".to_owned()));
        };
        let spec = find_spec(name).ok_or_else(|| ParseError::NotFound { name: name.clone() })?;
        if spec.kind == Kind::Reconfig {
            // Its options are words (`-add`, `-members`), not letters.
            return parse_reconfig(arguments);
        }
        let options = Options::parse(spec, arguments)?;
        let command = match spec.kind {
            Kind::Ls => Command::Ls {
                path: options.path(0, false)?,
                stat: options.flag('s'),
                watch: options.flag('w'),
                recursive: options.flag('R'),
            },
            Kind::Get => Command::Get {
                path: options.path(0, false)?,
                stat: options.flag('s'),
                watch: options.flag('w'),
            },
            Kind::Set => Command::Set {
                path: options.path(0, false)?,
                data: options.positional(1).unwrap_or_default().to_owned(),
                stat: options.flag('s'),
                version: options.version()?,
            },
            Kind::Create => parse_create(&options)?,
            Kind::Delete => Command::Delete {
                path: options.path(0, false)?,
                version: options.version()?,
            },
            Kind::DeleteAll => {
                let batch_size = match options.value('b') {
                    None => DELETEALL_BATCH_SIZE_DEFAULT,
                    Some(text) => text
                        .parse::<i32>()
                        .map_err(|_| {
                            ParseError::Invalid("-b argument must be an int value".to_owned())
                        })?
                        // zkCli deletes one node at a time for a batch size of 0 or less.
                        .max(1)
                        .unsigned_abs(),
                };
                Command::DeleteAll {
                    path: options.path(0, false)?,
                    batch_size,
                }
            }
            Kind::Stat => Command::Stat {
                path: options.path(0, false)?,
                watch: options.flag('w'),
            },
            Kind::GetAcl => Command::GetAcl {
                path: options.path(0, false)?,
                stat: options.flag('s'),
            },
            Kind::SetAcl => {
                let path = options.path(0, false)?;
                let acl = parse_acl_list(options.positional(1).unwrap_or_default())
                    .map_err(|error| ParseError::Invalid(error.to_string()))?;
                Command::SetAcl {
                    path,
                    acl,
                    stat: options.flag('s'),
                    version: options.version()?,
                    recursive: options.flag('R'),
                }
            }
            Kind::AddAuth => Command::AddAuth {
                scheme: options.positional(0).unwrap_or_default().to_owned(),
                auth: options.positional(1).unwrap_or_default().to_owned(),
            },
            Kind::Sync => Command::Sync {
                path: options.path(0, false)?,
            },
            Kind::WhoAmI => Command::WhoAmI,
            Kind::GetEphemerals => {
                let path = match options.positional(0) {
                    Some(_) => options.path(0, false)?,
                    None => "/".to_owned(),
                };
                Command::GetEphemerals { path }
            }
            Kind::GetAllChildrenNumber => Command::GetAllChildrenNumber {
                path: options.path(0, false)?,
            },
            Kind::Config => Command::Config {
                client_only: options.flag('c'),
                stat: options.flag('s'),
            },
            Kind::SetQuota => parse_set_quota(&options)?,
            Kind::ListQuota => Command::ListQuota {
                path: options.path(0, false)?,
            },
            Kind::DelQuota => {
                let given: Vec<QuotaLimit> = QuotaLimit::ALL
                    .iter()
                    .filter(|(letter, _)| options.flag(*letter))
                    .map(|(_, limit)| *limit)
                    .collect();
                if given.len() > 1 {
                    return Err(ParseError::Usage {
                        syntax: spec.syntax,
                    });
                }
                Command::DelQuota {
                    path: options.path(0, false)?,
                    limit: given.first().copied(),
                }
            }
            // Parsed above.
            Kind::Reconfig => return parse_reconfig(arguments),
            Kind::Help => Command::Help,
            Kind::Quit => Command::Quit,
        };
        Ok(command)
    }
}

/// `setquota`: exactly one of `-n`, `-b`, `-N`, `-B` with its value (zkCli's option group).
fn parse_set_quota(options: &Options) -> Result<Command, ParseError> {
    let syntax = "setquota -n|-b|-N|-B val path";
    let given: Vec<(char, QuotaLimit)> = QuotaLimit::ALL
        .iter()
        .copied()
        .filter(|(letter, _)| options.value(*letter).is_some())
        .collect();
    let [(letter, limit)] = given[..] else {
        return Err(ParseError::Usage { syntax });
    };
    let text = options.value(letter).unwrap_or_default();
    let value = text
        .parse::<i64>()
        .ok()
        .filter(|value| *value >= -1)
        .ok_or_else(|| {
            ParseError::Invalid(format!("-{letter} argument must be a number >= -1: {text}"))
        })?;
    Ok(Command::SetQuota {
        path: options.path(0, false)?,
        limit,
        value,
    })
}

impl Command {
    /// The node the command is about, for error messages.
    pub(crate) fn path(&self) -> Option<&str> {
        match self {
            Command::Ls { path, .. }
            | Command::Get { path, .. }
            | Command::Set { path, .. }
            | Command::Create { path, .. }
            | Command::Delete { path, .. }
            | Command::DeleteAll { path, .. }
            | Command::Stat { path, .. }
            | Command::GetAcl { path, .. }
            | Command::SetAcl { path, .. }
            | Command::Sync { path }
            | Command::GetEphemerals { path }
            | Command::GetAllChildrenNumber { path }
            | Command::SetQuota { path, .. }
            | Command::ListQuota { path }
            | Command::DelQuota { path, .. } => Some(path),
            Command::Config { .. } | Command::Reconfig { .. } => Some(CONFIG_NODE),
            Command::AddAuth { .. } | Command::WhoAmI | Command::Help | Command::Quit => None,
        }
    }
}

/// `create`, with zkCli's checks in zkCli's order (`CreateCommand.exec`).
fn parse_create(options: &Options) -> Result<Command, ParseError> {
    let invalid = |message: &str| ParseError::Invalid(message.to_owned());
    let ephemeral = options.flag('e');
    let sequential = options.flag('s');
    let container = options.flag('c');
    if container && (ephemeral || sequential) {
        return Err(invalid(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        ));
    }
    let ttl_ms = options
        .value('t')
        .map(|text| {
            text.parse::<i64>()
                .map_err(|_| invalid("-t argument must be a long value"))
        })
        .transpose()?;
    if ttl_ms.is_some() && ephemeral {
        return Err(invalid("TTLs cannot be used with Ephemeral znodes"));
    }
    if ttl_ms.is_some() && container {
        return Err(invalid("TTLs cannot be used with Container znodes"));
    }
    let ttl = match ttl_ms {
        None => None,
        Some(ms) if ms > 0 && ms <= TTL_MS_MAX => Some(Duration::from_millis(ms.unsigned_abs())),
        Some(_) => {
            return Err(ParseError::Invalid(format!(
                "ttl must be positive and cannot be larger than: {TTL_MS_MAX}"
            )));
        }
    };
    let mode = match (ephemeral, sequential, container) {
        (true, true, _) => CreateMode::EphemeralSequential,
        (true, false, _) => CreateMode::Ephemeral,
        (false, true, _) => CreateMode::PersistentSequential,
        (false, false, true) => CreateMode::Container,
        (false, false, false) => CreateMode::Persistent,
    };
    let path = options.path(0, sequential)?;
    let data = options.positional(1).unwrap_or_default().to_owned();
    let acl = options
        .positional(2)
        .map(|text| parse_acl_list(text).map_err(|error| ParseError::Invalid(error.to_string())))
        .transpose()?;
    Ok(Command::Create {
        path,
        data,
        acl,
        mode,
        ttl,
    })
}

/// Parses `reconfig`'s arguments as zkCli does: `-add`/`-remove` (incremental) or
/// `-members`/`-file` (the whole membership), `-v` the config version in hex, `-s` the stat.
fn parse_reconfig(words: &[String]) -> Result<Command, ParseError> {
    let option_error = |problem: String| ParseError::Option {
        problem,
        syntax: RECONFIG_SYNTAX,
    };
    let mut add = Vec::new();
    let mut remove = Vec::new();
    let mut members: Option<Vec<String>> = None;
    let mut file = None;
    let mut version = None;
    let mut stat = false;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .cloned()
                .ok_or_else(|| option_error(format!("Missing argument for option: {}", &word[1..])))
        };
        let list = |text: String| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match word.as_str() {
            "-s" => stat = true,
            "-v" => {
                let text = value()?;
                let parsed =
                    i64::from_str_radix(text.trim_start_matches("0x"), 16).map_err(|_| {
                        ParseError::Invalid(format!(
                            "-v argument must be the config version in hex (as `config` shows it), \
                         not {text}"
                        ))
                    })?;
                version = Some(parsed);
            }
            "-add" => add.extend(list(value()?)),
            "-remove" => remove.extend(list(value()?)),
            "-members" => members.get_or_insert_with(Vec::new).extend(list(value()?)),
            "-file" => file = Some(value()?),
            other if other.starts_with('-') => {
                return Err(option_error(format!("Unrecognized option: {other}")));
            }
            _ => {
                return Err(ParseError::Usage {
                    syntax: RECONFIG_SYNTAX,
                });
            }
        }
    }
    let incremental = !add.is_empty() || !remove.is_empty();
    let update = match (members, file) {
        (Some(_), Some(_)) => {
            return Err(ParseError::Invalid(
                "Can't use -file and -members together".to_owned(),
            ));
        }
        (Some(_), None) | (None, Some(_)) if incremental => {
            return Err(ParseError::Invalid(
                "Can't use -file or -members together with -add or -remove (mixing incremental \
                 and non-incremental modes is not allowed)"
                    .to_owned(),
            ));
        }
        (Some(members), None) => ReconfigUpdate::Members(members),
        (None, Some(file)) => ReconfigUpdate::File(file),
        (None, None) if incremental => ReconfigUpdate::Incremental { add, remove },
        (None, None) => {
            return Err(ParseError::Usage {
                syntax: RECONFIG_SYNTAX,
            });
        }
    };
    Ok(Command::Reconfig {
        update,
        version,
        stat,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Command, ParseError> {
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        Command::parse(&words)
    }

    fn message(line: &str) -> String {
        match parse(line) {
            Ok(command) => panic!("{line}: parsed as {command:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn reconfig_takes_incremental_or_whole_memberships_and_a_hex_version() {
        assert_eq!(
            parse("reconfig -s -v 100000003 -add 4=h:1:2;h:3,5=h:4:5 -remove 2").ok(),
            Some(Command::Reconfig {
                update: ReconfigUpdate::Incremental {
                    add: vec!["4=h:1:2;h:3".to_owned(), "5=h:4:5".to_owned()],
                    remove: vec!["2".to_owned()],
                },
                version: Some(0x1_0000_0003),
                stat: true,
            })
        );
        assert_eq!(
            parse("reconfig -members server.1=h:1:2,server.2=h:3:4").ok(),
            Some(Command::Reconfig {
                update: ReconfigUpdate::Members(vec![
                    "server.1=h:1:2".to_owned(),
                    "server.2=h:3:4".to_owned()
                ]),
                version: None,
                stat: false,
            })
        );
        assert!(message("reconfig -file a -members b").contains("-file and -members"));
        assert!(message("reconfig -add").contains("Missing argument for option: add"));
        assert!(message("reconfig extra").starts_with("usage: reconfig"));
    }

    #[test]
    fn options_may_come_anywhere_grouped_or_attached() {
        let expected = Command::Set {
            path: "/a".to_owned(),
            data: "x".to_owned(),
            stat: true,
            version: Some(3),
        };
        assert_eq!(parse("set -s -v 3 /a x"), Ok(expected.clone()));
        assert_eq!(parse("set /a x -v 3 -s"), Ok(expected.clone()));
        assert_eq!(parse("set -sv3 /a x"), Ok(expected));
        assert_eq!(
            parse("ls -sRw /a"),
            Ok(Command::Ls {
                path: "/a".to_owned(),
                stat: true,
                watch: true,
                recursive: true
            })
        );
    }

    #[test]
    fn negative_numbers_and_double_dash_make_arguments() {
        assert_eq!(
            parse("set /a -5"),
            Ok(Command::Set {
                path: "/a".to_owned(),
                data: "-5".to_owned(),
                stat: false,
                version: None
            })
        );
        assert_eq!(
            parse("set -v -1 -- /a -s"),
            Ok(Command::Set {
                path: "/a".to_owned(),
                data: "-s".to_owned(),
                stat: false,
                version: Some(-1)
            })
        );
    }

    #[test]
    fn usage_errors_name_the_syntax() {
        assert_eq!(message("ls"), "usage: ls [-s] [-w] [-R] path");
        assert_eq!(message("set /a"), "usage: set [-s] [-v version] path data");
        assert_eq!(
            message("set /a x y"),
            "usage: set [-s] [-v version] path data"
        );
        assert_eq!(
            message("ls -z /"),
            "Unrecognized option: -z; usage: ls [-s] [-w] [-R] path"
        );
        assert_eq!(
            message("delete /a -v"),
            "Missing argument for option: v; usage: delete [-v version] path"
        );
        assert_eq!(message("quit now"), "usage: quit");
    }

    #[test]
    fn unknown_commands_use_zkclis_wording() {
        assert_eq!(message("frobnicate /"), "Command not found: frobnicate");
        assert_eq!(message("LS /"), "Command not found: LS");
    }

    #[test]
    fn paths_are_checked() {
        assert_eq!(message("get a"), "Path must start with / character");
        assert_eq!(message("stat /a/"), "Path must not end with / character");
        assert_eq!(
            parse("create -s /queue/"),
            Ok(Command::Create {
                path: "/queue/".to_owned(),
                data: String::new(),
                acl: None,
                mode: CreateMode::PersistentSequential,
                ttl: None,
            })
        );
    }

    #[test]
    fn create_modes() {
        let mode = |line: &str| match parse(line) {
            Ok(Command::Create { mode, ttl, .. }) => (mode, ttl),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(mode("create /a"), (CreateMode::Persistent, None));
        assert_eq!(mode("create -e /a"), (CreateMode::Ephemeral, None));
        assert_eq!(
            mode("create -s /a"),
            (CreateMode::PersistentSequential, None)
        );
        assert_eq!(
            mode("create -es /a"),
            (CreateMode::EphemeralSequential, None)
        );
        assert_eq!(mode("create -c /a"), (CreateMode::Container, None));
        assert_eq!(
            mode("create -t 500 /a"),
            (CreateMode::Persistent, Some(Duration::from_millis(500)))
        );
        assert_eq!(
            mode("create -s -t 500 /a"),
            (
                CreateMode::PersistentSequential,
                Some(Duration::from_millis(500))
            )
        );
    }

    #[test]
    fn create_flag_conflicts_use_zkclis_wording() {
        assert_eq!(
            message("create -c -e /a"),
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."
        );
        assert_eq!(
            message("create -t abc /a"),
            "-t argument must be a long value"
        );
        assert_eq!(
            message("create -e -t 5 /a"),
            "TTLs cannot be used with Ephemeral znodes"
        );
        assert_eq!(
            message("create -c -t 5 /a"),
            "TTLs cannot be used with Container znodes"
        );
        assert_eq!(
            message("create -t 0 /a"),
            "ttl must be positive and cannot be larger than: 1099511627775"
        );
        assert_eq!(
            message("create -t 1099511627776 /a"),
            "ttl must be positive and cannot be larger than: 1099511627775"
        );
    }

    #[test]
    fn create_reads_data_and_acl() {
        match parse("create /a hello digest:bob:h4sh=:cdrwa,world:anyone:r") {
            Ok(Command::Create {
                data,
                acl: Some(acl),
                ..
            }) => {
                assert_eq!(data, "hello");
                let ids: Vec<&str> = acl.iter().map(|acl| acl.id()).collect();
                assert_eq!(ids, ["bob:h4sh=", "anyone"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            message("create /a x bad"),
            "bad does not have the form scheme:id:perm"
        );
        assert_eq!(message("setAcl /a world:anyone:rx"), "Unknown perm type: x");
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(
            message("delete -v x /a"),
            "-v argument must be an int value"
        );
        assert_eq!(
            message("deleteall /a -b many"),
            "-b argument must be an int value"
        );
        assert_eq!(
            parse("deleteall /a -b 0"),
            Ok(Command::DeleteAll {
                path: "/a".to_owned(),
                batch_size: 1
            })
        );
        assert_eq!(
            parse("deleteall /a"),
            Ok(Command::DeleteAll {
                path: "/a".to_owned(),
                batch_size: DELETEALL_BATCH_SIZE_DEFAULT
            })
        );
    }

    #[test]
    fn optional_arguments_have_zkclis_defaults() {
        assert_eq!(
            parse("getEphemerals"),
            Ok(Command::GetEphemerals {
                path: "/".to_owned()
            })
        );
        assert_eq!(
            parse("addauth digest"),
            Ok(Command::AddAuth {
                scheme: "digest".to_owned(),
                auth: String::new()
            })
        );
    }
}
