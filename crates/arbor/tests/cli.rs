//! `arbor cli` against a real `arbor server` process: every command, its output in zkCli's
//! format, its errors (one line, zkCli's wording, non-zero exit) and the interactive shell with
//! watches.
//!
//! Each test starts its own server on `127.0.0.1:0` with a fresh data directory and reads the
//! port from the line the server prints; a guard kills the server when the test ends. Nothing
//! waits on a clock for correctness: the shell's output is read line by line, and a generous
//! bound only turns a hang into a failure.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

mod support;

use support::cli::{CLI_TIMEOUT_MS, Run, arbor, cli, script};

/// How long a test waits for a line the shell should print before calling it a hang.
const LINE_WAIT_MAX: Duration = Duration::from_secs(30);

/// A running `arbor server`, killed when dropped.
struct Server {
    process: Child,
    address: String,
    /// Kept open so the server never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    _data: TempDir,
}

impl Server {
    fn start() -> Server {
        let data = tempfile::tempdir().expect("a temporary data directory");
        let mut process = arbor()
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("arbor server starts");
        let Some(stdout) = process.stdout.take() else {
            let _ = process.kill();
            panic!("no stdout pipe from arbor server");
        };
        let mut server = Server {
            process,
            address: String::new(),
            _stdout: BufReader::new(stdout),
            _data: data,
        };
        let mut line = String::new();
        let read = server
            ._stdout
            .read_line(&mut line)
            .expect("read the server's first line");
        assert!(read > 0, "arbor server exited before serving");
        // "arbor <version> serving on <addr>"
        let address = line
            .trim()
            .rsplit_once(" serving on ")
            .map(|(_, address)| address.to_owned());
        server.address = address.unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The names of the eleven lines of zkCli's stat block, in order.
const STAT_KEYS: [&str; 11] = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
];

/// Checks that `lines` is a stat block in zkCli's format and returns its values by key.
fn stat_block(lines: &[&str]) -> Vec<(String, String)> {
    assert_eq!(lines.len(), STAT_KEYS.len(), "{lines:?}");
    let mut values = Vec::new();
    for (line, key) in lines.iter().zip(STAT_KEYS) {
        let (name, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("not a stat line: {line}"));
        assert_eq!(name, key, "{lines:?}");
        match key {
            "cZxid" | "mZxid" | "pZxid" | "ephemeralOwner" => {
                let hex = value
                    .strip_prefix("0x")
                    .unwrap_or_else(|| panic!("{key} not hex: {value}"));
                assert!(u64::from_str_radix(hex, 16).is_ok(), "{line}");
            }
            "ctime" | "mtime" => {
                // Java's Date.toString(): "Wed Nov 25 13:48:56 UTC 2026".
                let parts: Vec<&str> = value.split(' ').collect();
                assert_eq!(parts.len(), 6, "{line}");
                assert_eq!(parts[0].len(), 3, "{line}");
                assert_eq!(parts[1].len(), 3, "{line}");
                assert_eq!(parts[2].len(), 2, "{line}");
                assert_eq!(parts[3].len(), 8, "{line}");
                assert_eq!(parts[4], "UTC", "{line}");
            }
            _ => assert!(value.parse::<i64>().is_ok(), "{line}"),
        }
        values.push((key.to_owned(), value.to_owned()));
    }
    values
}

fn stat_value(block: &[(String, String)], key: &str) -> String {
    block
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

/// A loopback port nothing listens on: bound by us a moment ago, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn create_get_set_ls_stat_print_what_zkcli_prints() {
    let server = Server::start();
    let address = server.address.as_str();

    assert_eq!(cli(address, "create /app hello").ok(), "Created /app\n");
    assert_eq!(cli(address, "get /app").ok(), "hello\n");
    assert_eq!(cli(address, "set /app 'new value'").ok(), "");

    let got = cli(address, "get -s /app").ok();
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "new value");
    let stat = stat_block(&lines[1..]);
    assert_eq!(stat_value(&stat, "dataVersion"), "1");
    assert_eq!(stat_value(&stat, "dataLength"), "9");
    assert_eq!(stat_value(&stat, "ephemeralOwner"), "0x0");
    assert_eq!(stat_value(&stat, "numChildren"), "0");

    let set = cli(address, "set -s -v 1 /app third").ok();
    let stat = stat_block(&set.lines().collect::<Vec<_>>());
    assert_eq!(stat_value(&stat, "dataVersion"), "2");

    assert_eq!(cli(address, "create /app/b").ok(), "Created /app/b\n");
    assert_eq!(cli(address, "create /app/a").ok(), "Created /app/a\n");
    // Children are sorted, as zkCli sorts them.
    assert_eq!(cli(address, "ls /app").ok(), "[a, b]\n");
    assert_eq!(cli(address, "ls /").ok(), "[app, zookeeper]\n");
    let listed = cli(address, "ls -s /app").ok();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines[0], "[a, b]");
    let stat = stat_block(&lines[1..]);
    assert_eq!(stat_value(&stat, "numChildren"), "2");
    assert_eq!(stat_value(&stat, "cversion"), "2");

    let stat = cli(address, "stat /app/a").ok();
    let stat = stat_block(&stat.lines().collect::<Vec<_>>());
    assert_eq!(stat_value(&stat, "dataLength"), "0");

    // zkCli's other spelling: the command after the options, no -c.
    let run: Run = arbor()
        .args(["cli", "-server", address, "ls", "/app"])
        .stdin(Stdio::null())
        .output()
        .expect("arbor cli runs")
        .into();
    assert_eq!(run.ok(), "[a, b]\n");
}

#[test]
fn create_modes_sequential_ephemeral_container_ttl() {
    let server = Server::start();
    let address = server.address.as_str();

    assert_eq!(cli(address, "create /q").ok(), "Created /q\n");
    assert_eq!(
        cli(address, "create -s /q/item- x").ok(),
        "Created /q/item-0000000000\n"
    );
    assert_eq!(
        cli(address, "create -s /q/item- y").ok(),
        "Created /q/item-0000000001\n"
    );
    assert_eq!(
        cli(address, "create -s /q/").ok(),
        "Created /q/0000000002\n"
    );

    // An ephemeral node lives as long as its session: the shell closes its session on exit,
    // so the node is gone as soon as the command returns.
    assert_eq!(cli(address, "create -e /q/eph").ok(), "Created /q/eph\n");
    cli(address, "stat /q/eph").fails(1, "Node does not exist: /q/eph");
    assert_eq!(
        cli(address, "create -e -s /q/eseq-").ok(),
        "Created /q/eseq-0000000004\n"
    );

    assert_eq!(cli(address, "create -c /box").ok(), "Created /box\n");
    assert_eq!(
        cli(address, "create -t 600000 /ttl data").ok(),
        "Created /ttl\n"
    );
    assert_eq!(
        cli(address, "create -s -t 600000 /ttl/s- data").ok(),
        "Created /ttl/s-0000000000\n"
    );
    assert_eq!(cli(address, "get /ttl").ok(), "data\n");

    cli(address, "create -c -s /bad").fails(
        1,
        "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
    );
    cli(address, "create -e -t 10 /bad").fails(1, "TTLs cannot be used with Ephemeral znodes");
    cli(address, "create -t soon /bad").fails(1, "-t argument must be a long value");
}

#[test]
fn delete_deleteall_and_counts() {
    let server = Server::start();
    let address = server.address.as_str();

    for path in ["/t", "/t/a", "/t/a/x", "/t/a/y", "/t/b", "/t/b/z"] {
        assert_eq!(
            cli(address, &format!("create {path}")).ok(),
            format!("Created {path}\n")
        );
    }
    assert_eq!(cli(address, "getAllChildrenNumber /t").ok(), "5\n");
    assert_eq!(
        cli(address, "ls -R /t").ok(),
        "/t\n/t/a\n/t/b\n/t/a/x\n/t/a/y\n/t/b/z\n"
    );

    cli(address, "delete /t/a").fails(1, "Node not empty: /t/a");
    cli(address, "delete -v 3 /t/a/x").fails(1, "version No is not valid : /t/a/x");
    assert_eq!(cli(address, "delete -v 0 /t/a/x").ok(), "");
    cli(address, "delete /t/a/x").fails(1, "Node does not exist: /t/a/x");

    // A batch of 2 makes deleteall send several multi requests.
    assert_eq!(cli(address, "deleteall /t -b 2").ok(), "");
    cli(address, "stat /t").fails(1, "Node does not exist: /t");
    cli(address, "deleteall /t").fails(1, "Node does not exist: /t");
    assert_eq!(cli(address, "ls /").ok(), "[zookeeper]\n");
}

#[test]
fn acls_auth_and_identities() {
    let server = Server::start();
    let address = server.address.as_str();

    assert_eq!(cli(address, "create /open x").ok(), "Created /open\n");
    assert_eq!(
        cli(address, "getAcl /open").ok(),
        "'world,'anyone\n: cdrwa\n"
    );

    let set = cli(
        address,
        "setAcl -s /open world:anyone:rw,ip:127.0.0.1:cdrwa",
    )
    .ok();
    let stat = stat_block(&set.lines().collect::<Vec<_>>());
    assert_eq!(stat_value(&stat, "aclVersion"), "1");
    assert_eq!(
        cli(address, "getAcl /open").ok(),
        "'world,'anyone\n: rw\n'ip,'127.0.0.1\n: cdrwa\n"
    );
    cli(address, "setAcl -v 0 /open world:anyone:r").fails(1, "version No is not valid : /open");
    let with_stat = cli(address, "getAcl -s /open").ok();
    let lines: Vec<&str> = with_stat.lines().collect();
    assert_eq!(
        lines[..4],
        ["'world,'anyone", ": rw", "'ip,'127.0.0.1", ": cdrwa"]
    );
    assert_eq!(stat_value(&stat_block(&lines[4..]), "aclVersion"), "1");

    // setAcl -R reaches every node of the subtree.
    assert_eq!(cli(address, "create /open/kid").ok(), "Created /open/kid\n");
    assert_eq!(cli(address, "setAcl -R /open world:anyone:cdrwa").ok(), "");
    assert_eq!(
        cli(address, "getAcl /open/kid").ok(),
        "'world,'anyone\n: cdrwa\n"
    );

    // A node only its creator's digest identity may touch.
    let shell = script(
        address,
        &[
            "addauth digest bob:secret",
            "create /private s auth::cdrwa",
            "getAcl /private",
            "whoami",
            "get /private",
        ],
    );
    assert_eq!(shell.code, Some(0), "{shell:?}");
    assert_eq!(shell.stderr, "", "{shell:?}");
    let lines: Vec<&str> = shell.stdout.lines().collect();
    assert_eq!(lines[0], "Created /private");
    assert!(lines[1].starts_with("'digest,'bob:"), "{lines:?}");
    assert_eq!(lines[2], ": cdrwa");
    assert_eq!(lines[3], "Auth scheme: User");
    assert!(
        lines[4..]
            .iter()
            .any(|line| line.starts_with("digest: bob")),
        "{lines:?}"
    );
    assert_eq!(lines.last(), Some(&"s"), "{lines:?}");

    cli(address, "get /private").fails(1, "Insufficient permission : /private");
    cli(address, "set /private x").fails(1, "Insufficient permission : /private");
    assert_eq!(
        cli(address, "whoami").ok().lines().next(),
        Some("Auth scheme: User")
    );

    // A failed authentication ends the session, as ZooKeeper's AuthFailed does; the shell says
    // so for the commands that follow and still ends normally.
    let shell = script(address, &["addauth nosuchscheme secret", "ls /"]);
    assert_eq!(shell.code, Some(0), "{shell:?}");
    assert_eq!(
        shell.stderr,
        "KeeperErrorCode = AuthFailed\n\
         Not connected: authentication failed, so the session was closed\n",
        "{shell:?}"
    );

    cli(address, "setAcl /open nonsense")
        .fails(1, "nonsense does not have the form scheme:id:perm");
    cli(address, "create /x data world:anyone:rwz").fails(1, "Unknown perm type: z");
    cli(address, "stat /x").fails(1, "Node does not exist: /x");
}

#[test]
fn sync_and_ephemerals_of_the_session() {
    let server = Server::start();
    let address = server.address.as_str();

    assert_eq!(cli(address, "sync /").ok(), "Sync is OK\n");
    assert_eq!(cli(address, "getEphemerals").ok(), "[]\n");
    let shell = script(
        address,
        &[
            "create -e /e1",
            "create /dir",
            "create -e /dir/e2",
            "getEphemerals /dir",
            "getEphemerals",
        ],
    );
    assert_eq!(shell.code, Some(0), "{shell:?}");
    assert_eq!(shell.stderr, "", "{shell:?}");
    let lines: Vec<&str> = shell.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        ["Created /e1", "Created /dir", "Created /dir/e2"]
    );
    assert_eq!(lines[3], "[/dir/e2]");
    assert!(
        lines[4] == "[/e1, /dir/e2]" || lines[4] == "[/dir/e2, /e1]",
        "{lines:?}"
    );
}

#[test]
fn errors_are_one_line_in_zkclis_words_and_fail() {
    let server = Server::start();
    let address = server.address.as_str();

    cli(address, "get /missing").fails(1, "Node does not exist: /missing");
    cli(address, "ls /missing").fails(1, "Node does not exist: /missing");
    cli(address, "create /a/b").fails(1, "Node does not exist: /a/b");
    assert_eq!(cli(address, "create /a").ok(), "Created /a\n");
    cli(address, "create /a").fails(1, "Node already exists: /a");
    cli(address, "set -v 7 /a x").fails(1, "version No is not valid : /a");
    cli(address, "get a").fails(1, "Path must start with / character");
    cli(address, "get /a/").fails(1, "Path must not end with / character");
    cli(address, "get /a//b").fails(
        1,
        "Invalid path string \"/a//b\" caused by empty node name specified @3",
    );
    cli(address, "set -v x /a y").fails(1, "-v argument must be an int value");

    cli(address, "ls").fails(1, "usage: ls [-s] [-w] [-R] path");
    cli(address, "set /a").fails(1, "usage: set [-s] [-v version] path data");
    cli(address, "get -z /a").fails(1, "Unrecognized option: -z; usage: get [-s] [-w] path");
    cli(address, "frobnicate /").fails(127, "Command not found: frobnicate");
}

#[test]
fn usage_errors_need_no_server() {
    let address = format!("127.0.0.1:{}", closed_port());
    cli(&address, "ls").fails(1, "usage: ls [-s] [-w] [-R] path");
    cli(&address, "bogus").fails(127, "Command not found: bogus");
    let help = cli(&address, "help").ok();
    assert!(help.starts_with("arbor cli [-server host:port"), "{help}");
    assert!(
        help.contains("\n\tcreate [-s] [-e] [-c] [-t ttl] path [data] [acl]\n"),
        "{help}"
    );

    let run: Run = arbor()
        .args(["cli", "-server"])
        .output()
        .expect("arbor cli runs")
        .into();
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(run.stderr, "arbor cli: -server needs a value\n", "{run:?}");
}

#[test]
fn an_unreachable_server_is_one_line_and_a_quick_failure() {
    let address = format!("127.0.0.1:{}", closed_port());
    let run = cli(&address, "ls /");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    let prefix = format!("arbor cli: cannot connect to {address}: ");
    assert!(run.stderr.starts_with(&prefix), "{run:?}");
    assert!(run.stderr.to_lowercase().contains("refused"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");

    // A peer that accepts TCP but never answers the handshake: the timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = silent.local_addr().expect("its address").to_string();
    let run: Run = arbor()
        .args(["cli", "-server", &address, "-timeout", "1500", "-c", "ls /"])
        .output()
        .expect("arbor cli runs")
        .into();
    assert_eq!(run.code, Some(1), "{run:?}");
    let prefix = format!("arbor cli: cannot connect to {address}: ");
    assert!(run.stderr.starts_with(&prefix), "{run:?}");
    assert!(run.stderr.contains("no session established"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
}

#[test]
fn the_shell_goes_on_after_errors_and_exits_zero_at_end_of_input() {
    let server = Server::start();
    let address = server.address.as_str();

    let shell = script(
        address,
        &[
            "create /s one",
            "",
            "get /nope",
            "bogus",
            "set /s \"two words\"",
            "create -e /s/e",
            "create /s/e/child",
            "get /s",
            "set /s \"unterminated",
            "ls /s",
        ],
    );
    assert_eq!(shell.code, Some(0), "{shell:?}");
    assert_eq!(
        shell.stdout, "Created /s\nCreated /s/e\ntwo words\n[e]\n",
        "{shell:?}"
    );
    assert_eq!(
        shell.stderr,
        "Node does not exist: /nope\nCommand not found: bogus\n\
         Ephemerals cannot have children: /s/e/child\n\
         unterminated \" quote in: set /s \"unterminated\n",
        "{shell:?}"
    );

    let shell = script(address, &["quit", "create /never"]);
    assert_eq!(
        (shell.code, shell.stdout.as_str(), shell.stderr.as_str()),
        (Some(0), "", "")
    );
    cli(address, "stat /never").fails(1, "Node does not exist: /never");
}

/// An interactive shell whose output is read line by line as it comes.
struct LiveShell {
    process: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

/// Forwards each line `source` yields to a channel, from a thread of its own.
fn forward_lines(source: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(source).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

impl LiveShell {
    fn start(address: &str) -> LiveShell {
        let mut process = arbor()
            .args(["cli", "-server", address, "--timeout", CLI_TIMEOUT_MS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("arbor cli starts");
        let stdin = process.stdin.take();
        let lines = forward_lines(process.stdout.take().expect("stdout pipe"));
        let errors = forward_lines(process.stderr.take().expect("stderr pipe"));
        LiveShell {
            process,
            stdin,
            lines,
            errors,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the shell's input is open");
        writeln!(stdin, "{line}").expect("write to the shell");
        stdin.flush().expect("flush the shell's input");
    }

    /// The next line the shell prints.
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT_MAX)
            .expect("the shell printed the expected line")
    }

    /// The next line the shell prints on standard error.
    fn next_error(&self) -> String {
        self.errors
            .recv_timeout(LINE_WAIT_MAX)
            .expect("the shell printed the expected error")
    }

    /// Skips lines up to and including the first one equal to `wanted`.
    fn expect_line(&self, wanted: &str) {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(LINE_WAIT_MAX)
                .unwrap_or_else(|_| panic!("no line {wanted:?}; saw {seen:?}"));
            if line == wanted {
                return;
            }
            seen.push(line);
        }
    }

    /// Closes the shell's input and returns its exit code.
    fn finish(mut self) -> Option<i32> {
        drop(self.stdin.take());
        self.process.wait().expect("the shell exits").code()
    }
}

impl Drop for LiveShell {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn the_shell_prints_watch_events_as_they_arrive() {
    let server = Server::start();
    let address = server.address.as_str();
    assert_eq!(cli(address, "create /w old").ok(), "Created /w\n");

    let mut shell = LiveShell::start(address);

    // Data watch: `get -w`, then a change made by another session.
    shell.send("get -w /w");
    assert_eq!(shell.next_line(), "old");
    assert_eq!(cli(address, "set /w new").ok(), "");
    assert_eq!(shell.next_line(), "");
    assert_eq!(shell.next_line(), "WATCHER::");
    assert_eq!(shell.next_line(), "");
    let event = shell.next_line();
    assert!(
        event.starts_with("WatchedEvent state:SyncConnected type:NodeDataChanged path:/w zxid: "),
        "{event}"
    );

    // Child watch.
    shell.send("ls -w /w");
    assert_eq!(shell.next_line(), "[]");
    assert_eq!(cli(address, "create /w/kid").ok(), "Created /w/kid\n");
    shell.expect_line("WATCHER::");
    shell.expect_line("");
    let event = shell.next_line();
    assert!(
        event.starts_with(
            "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/w zxid: "
        ),
        "{event}"
    );

    // Exists watch on a node that does not exist yet fires on its creation.
    shell.send("stat -w /later");
    assert_eq!(cli(address, "create /later").ok(), "Created /later\n");
    shell.expect_line("WATCHER::");
    shell.expect_line("");
    let event = shell.next_line();
    assert!(
        event.starts_with("WatchedEvent state:SyncConnected type:NodeCreated path:/later zxid: "),
        "{event}"
    );

    // A watch fires once: a second change prints nothing, and the shell still answers.
    assert_eq!(cli(address, "set /w newer").ok(), "");
    shell.send("get /w");
    assert_eq!(shell.next_line(), "newer");

    assert_eq!(shell.finish(), Some(0));
}

#[test]
fn commands_fail_at_once_while_the_server_is_away() {
    let server = Server::start();
    let mut shell = LiveShell::start(&server.address);
    shell.send("ls /");
    assert_eq!(shell.next_line(), "[zookeeper]");

    drop(server);
    shell.expect_line("WatchedEvent state:Disconnected type:None path:null zxid: -1");
    shell.send("ls /");
    assert_eq!(shell.next_error(), "KeeperErrorCode = ConnectionLoss for /");
    shell.send("get -s /x");
    assert_eq!(
        shell.next_error(),
        "KeeperErrorCode = ConnectionLoss for /x"
    );
    assert_eq!(shell.finish(), Some(0));
}
