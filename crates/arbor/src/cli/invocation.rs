//! The command line of `arbor cli` itself: clap's options plus zkCli's single-dash ones.

use std::time::Duration;

use thiserror::Error;

use super::CliArgs;
use super::words::split_words;

/// The server list used when none is given.
pub(crate) const SERVER_DEFAULT: &str = "127.0.0.1:2181";

/// Session timeout asked of the server when none is given (zkCli's default). Connecting gives up
/// after the same time.
pub(crate) const TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// What `arbor cli` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// `host:port[,host:port...][/chroot]`.
    pub(crate) server: String,
    /// Session timeout, and the bound on connecting.
    pub(crate) timeout: Duration,
    /// Accept a read-only server (zkCli's `-r`).
    pub(crate) read_only: bool,
    /// The words of the one command to run, or `None` for the interactive shell.
    pub(crate) one_shot: Option<Vec<String>>,
}

/// A command line `arbor cli` cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum InvocationError {
    /// An option without its value.
    #[error("{option} needs a value")]
    MissingValue {
        /// The option.
        option: String,
    },
    /// `-timeout` / `--timeout` that is not a positive number of milliseconds.
    #[error("timeout must be a positive number of milliseconds, not {value:?}")]
    BadTimeout {
        /// The value given.
        value: String,
    },
    /// An option neither clap nor zkCli knows.
    #[error("unknown option {option} (try arbor cli --help)")]
    UnknownOption {
        /// The option.
        option: String,
    },
    /// Both `-c "..."` and a command after the options.
    #[error("give the command either with -c or after the options, not both")]
    TwoCommands,
    /// `-c ""`.
    #[error("-c needs a command")]
    EmptyCommand,
    /// The `-c` text has an unclosed quote.
    #[error(transparent)]
    Quote(#[from] super::words::UnterminatedQuote),
}

impl Invocation {
    /// Resolves clap's view of the command line plus the words clap passed through, which may
    /// hold zkCli's spellings: `-server host:port`, `-timeout ms`, `-r`, `-c "cmd"`, and a
    /// command with its arguments after the options (`arbor cli -server h:p ls /`).
    ///
    /// # Errors
    /// [`InvocationError`] when an option lacks its value or is unknown, the timeout is not a
    /// positive integer, or a command is given twice.
    pub(crate) fn from_args(args: CliArgs) -> Result<Invocation, InvocationError> {
        let mut server = args.server;
        let mut timeout_text = args.timeout_ms.map(|ms| ms.to_string());
        let mut read_only = args.read_only;
        let mut command_text = args.command;
        let mut command_words = None;
        let mut words = args.rest.into_iter();
        while let Some(word) = words.next() {
            let mut value_of = |option: &str| {
                words.next().ok_or_else(|| InvocationError::MissingValue {
                    option: option.to_owned(),
                })
            };
            match word.as_str() {
                "-server" | "--server" => server = Some(value_of(&word)?),
                "-timeout" | "--timeout" => timeout_text = Some(value_of(&word)?),
                "-c" => {
                    if command_text.is_some() {
                        return Err(InvocationError::TwoCommands);
                    }
                    command_text = Some(value_of(&word)?);
                }
                "-r" => read_only = true,
                option if option.starts_with('-') && option.len() > 1 => {
                    return Err(InvocationError::UnknownOption { option: word });
                }
                _ => {
                    let mut command = vec![word];
                    command.extend(words.by_ref());
                    command_words = Some(command);
                }
            }
        }
        let one_shot = match (command_text, command_words) {
            (Some(_), Some(_)) => return Err(InvocationError::TwoCommands),
            (Some(text), None) => {
                let words = split_words(&text)?;
                if words.is_empty() {
                    return Err(InvocationError::EmptyCommand);
                }
                Some(words)
            }
            (None, words) => words,
        };
        let timeout_ms = match timeout_text {
            None => TIMEOUT_MS_DEFAULT,
            Some(text) => match text.parse::<u64>() {
                Ok(ms) if ms > 0 => ms,
                _ => return Err(InvocationError::BadTimeout { value: text }),
            },
        };
        Ok(Invocation {
            server: server.unwrap_or_else(|| SERVER_DEFAULT.to_owned()),
            timeout: Duration::from_millis(timeout_ms),
            read_only,
            one_shot,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        args: CliArgs,
    }

    fn invocation(argv: &[&str]) -> Result<Invocation, InvocationError> {
        let argv: Vec<&str> = std::iter::once("cli").chain(argv.iter().copied()).collect();
        match Harness::try_parse_from(&argv) {
            Ok(harness) => Invocation::from_args(harness.args),
            Err(error) => panic!("clap refused {argv:?}: {error}"),
        }
    }

    fn words(line: &[&str]) -> Option<Vec<String>> {
        Some(line.iter().map(|word| (*word).to_owned()).collect())
    }

    #[test]
    fn defaults() {
        assert_eq!(
            invocation(&[]),
            Ok(Invocation {
                server: SERVER_DEFAULT.to_owned(),
                timeout: Duration::from_millis(TIMEOUT_MS_DEFAULT),
                read_only: false,
                one_shot: None,
            })
        );
    }

    #[test]
    fn clap_spellings() {
        let parsed = invocation(&["--server", "h:1", "--timeout", "500", "-c", "ls -s /"]);
        assert_eq!(
            parsed,
            Ok(Invocation {
                server: "h:1".to_owned(),
                timeout: Duration::from_millis(500),
                read_only: false,
                one_shot: words(&["ls", "-s", "/"]),
            })
        );
    }

    #[test]
    fn zkcli_spellings() {
        let parsed = invocation(&[
            "-server", "h:1,h:2", "-timeout", "700", "-r", "-c", "get '/a'",
        ]);
        assert_eq!(
            parsed,
            Ok(Invocation {
                server: "h:1,h:2".to_owned(),
                timeout: Duration::from_millis(700),
                read_only: true,
                one_shot: words(&["get", "/a"]),
            })
        );
    }

    #[test]
    fn a_command_after_the_options_keeps_its_own_options() {
        let parsed = invocation(&["-server", "h:1", "ls", "-s", "-c", "/"]);
        assert_eq!(
            parsed.map(|i| i.one_shot),
            Ok(words(&["ls", "-s", "-c", "/"]))
        );
        let parsed = invocation(&["create", "-e", "/a"]);
        assert_eq!(
            parsed.map(|i| i.one_shot),
            Ok(words(&["create", "-e", "/a"]))
        );
    }

    #[test]
    fn mistakes_are_reported() {
        assert_eq!(
            invocation(&["-server"]),
            Err(InvocationError::MissingValue {
                option: "-server".to_owned()
            })
        );
        assert_eq!(
            invocation(&["-timeout", "0"]),
            Err(InvocationError::BadTimeout {
                value: "0".to_owned()
            })
        );
        assert_eq!(
            invocation(&["-bogus"]),
            Err(InvocationError::UnknownOption {
                option: "-bogus".to_owned()
            })
        );
        assert_eq!(
            invocation(&["-c", "ls /", "ls", "/"]),
            Err(InvocationError::TwoCommands)
        );
        assert_eq!(
            invocation(&["-c", "  "]),
            Err(InvocationError::EmptyCommand)
        );
        assert!(matches!(
            invocation(&["-c", "set /a \"x"]),
            Err(InvocationError::Quote(_))
        ));
    }
}
