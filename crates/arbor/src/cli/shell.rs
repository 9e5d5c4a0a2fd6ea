//! The shell around the session: one command from the command line, or a read-eval-print loop
//! over standard input with watch events printed as they arrive.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use tokio::sync::mpsc;
use zookeeper_client::WatchedEvent;

use super::command::Command;
use super::connect::connect;
use super::format::{client_state_name, format_state_event, format_watch_event};
use super::invocation::Invocation;
use super::session::{CommandFailure, Session};
use super::syntax::command_syntaxes;
use super::watches::{RecentEvents, Watches};
use super::words::split_words;

/// Lines read ahead of the shell. One is enough: the reader only needs to stay a line ahead.
const LINES_PENDING_MAX: usize = 1;

/// Runs what `invocation` asks for and returns the process status: for one command, 0 when it
/// succeeded, 127 for an unknown command, else 1; for the interactive shell, 0 at end of input
/// or `quit` whatever failed before. 1 when no session could be opened.
pub(crate) async fn run(invocation: Invocation) -> ExitCode {
    // A one-shot command is parsed before connecting: a typo needs no server to be reported.
    let one_shot = match invocation.one_shot.as_deref().map(Command::parse) {
        None => None,
        Some(Ok(command)) => Some(command),
        Some(Err(error)) => return report(&CommandFailure::Parse(error)),
    };
    if one_shot == Some(Command::Help) {
        return match print_help(&mut io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => report(&CommandFailure::Output(error)),
        };
    }
    let client = match connect(&invocation).await {
        Ok(client) => client,
        Err(reason) => {
            let _ = writeln!(
                io::stderr(),
                "arbor cli: cannot connect to {}: {reason}",
                invocation.server
            );
            return ExitCode::FAILURE;
        }
    };
    let (watches, events) = Watches::new();
    let session = Session::new(client, watches);
    let status = match one_shot {
        Some(command) => run_once(&session, &command).await,
        None => interactive(&session, events, &invocation.server).await,
    };
    session.close().await;
    status
}

/// Prints a failure on standard error (one line) and returns the matching exit status.
fn report(failure: &CommandFailure) -> ExitCode {
    let _ = writeln!(io::stderr(), "{failure}");
    ExitCode::from(failure.exit_status())
}

/// Whether a failure is only that the reader of our output went away (`arbor cli ... | head`).
fn is_closed_pipe(failure: &CommandFailure) -> bool {
    matches!(failure, CommandFailure::Output(error) if error.kind() == io::ErrorKind::BrokenPipe)
}

async fn run_once(session: &Session, command: &Command) -> ExitCode {
    if *command == Command::Quit {
        return ExitCode::SUCCESS;
    }
    let mut out = io::stdout().lock();
    let mut err = io::stderr();
    let outcome = session.execute(command, &mut out, &mut err).await;
    let outcome = outcome.and_then(|()| out.flush().map_err(CommandFailure::Output));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if is_closed_pipe(&failure) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    }
}

/// The command list, zkCli's `usage()` with our own first line.
fn print_help(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "arbor cli [-server host:port[,host:port...]] [--timeout MS] [-r] [-c \"cmd args\" | cmd args]"
    )?;
    for syntax in command_syntaxes() {
        writeln!(out, "\t{syntax}")?;
    }
    out.flush()
}

/// Reads standard input on its own thread (reads block), a line at a time, into a bounded
/// channel. Bytes that are not UTF-8 are replaced rather than ending the shell. The channel
/// closes at end of input; a read error is sent once before it closes.
fn spawn_line_reader() -> mpsc::Receiver<io::Result<String>> {
    let (sender, receiver) = mpsc::channel(LINES_PENDING_MAX);
    let reader = move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let item = match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => Ok(String::from_utf8_lossy(&line).into_owned()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => Err(error),
            };
            let stop = item.is_err();
            if sender.blocking_send(item).is_err() || stop {
                return;
            }
        }
    };
    if let Err(error) = std::thread::Builder::new()
        .name("arbor-cli-stdin".to_owned())
        .spawn(reader)
    {
        // Without a reader the shell sees end of input at once; say why.
        let _ = writeln!(
            io::stderr(),
            "arbor cli: cannot read standard input: {error}"
        );
    }
    receiver
}

/// The read-eval-print loop. Watch events and session state changes are printed while the
/// shell waits for a line, zkCli style; a prompt is shown only when standard input is a
/// terminal, so piped scripts get clean output.
async fn interactive(
    session: &Session,
    mut events: mpsc::Receiver<WatchedEvent>,
    server: &str,
) -> ExitCode {
    let terminal = io::stdin().is_terminal();
    let mut lines = spawn_line_reader();
    let mut states = session.state_watcher();
    let mut recent = RecentEvents::default();
    let mut stderr = io::stderr();
    let mut count: u64 = 0;
    let prompt = |count: u64| {
        format!(
            "[arbor: {server}({}) {count}] ",
            client_state_name(session.state())
        )
    };
    loop {
        if terminal {
            let mut out = io::stdout().lock();
            // A terminal that cannot show the prompt cannot show anything else either; the
            // next command's output reports it.
            let _ = write!(out, "{}", prompt(count)).and_then(|()| out.flush());
        }
        let line = loop {
            let notice = tokio::select! {
                line = lines.recv() => break line,
                Some(event) = events.recv() => {
                    if !recent.first_sight(&event) {
                        continue;
                    }
                    format_watch_event(&event)
                }
                state = states.changed() => format_state_event(state),
            };
            let mut out = io::stdout().lock();
            let shown = write!(out, "{notice}")
                .and_then(|()| {
                    if terminal {
                        write!(out, "{}", prompt(count))
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| out.flush());
            if shown.is_err() {
                // Nobody reads our output any more.
                return ExitCode::SUCCESS;
            }
        };
        let line = match line {
            None => {
                if terminal {
                    // End of input typed at the prompt (Ctrl-D): leave the terminal on a new line.
                    let _ = writeln!(io::stdout());
                }
                break;
            }
            Some(Ok(line)) => line,
            Some(Err(error)) => {
                let _ = writeln!(stderr, "arbor cli: cannot read standard input: {error}");
                break;
            }
        };
        let line = line.strip_suffix('\n').unwrap_or(&line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let words = match split_words(line) {
            Ok(words) => words,
            Err(error) => {
                let _ = writeln!(stderr, "{error}");
                count += 1;
                continue;
            }
        };
        if words.is_empty() {
            continue;
        }
        count += 1;
        let command = match Command::parse(&words) {
            Ok(command) => command,
            Err(error) => {
                report(&CommandFailure::Parse(error));
                continue;
            }
        };
        let mut out = io::stdout().lock();
        let outcome = match command {
            Command::Quit => break,
            Command::Help => print_help(&mut out).map_err(CommandFailure::Output),
            command => session
                .execute(&command, &mut out, &mut stderr)
                .await
                .and_then(|()| out.flush().map_err(CommandFailure::Output)),
        };
        match outcome {
            Ok(()) => {}
            Err(failure) if is_closed_pipe(&failure) => break,
            Err(failure) => {
                report(&failure);
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_the_commands_one_per_line() {
        let mut out = Vec::new();
        assert!(print_help(&mut out).is_ok());
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("arbor cli [-server host:port"));
        assert!(lines.contains(&"\tcreate [-s] [-e] [-c] [-t ttl] path [data] [acl]"));
        assert!(lines.contains(&"\tls [-s] [-w] [-R] path"));
        assert_eq!(lines.len(), 1 + command_syntaxes().count());
    }
}
