//! zkCli's output formats: stat blocks, Java dates, watch events, Java lists, and the messages
//! of `CliWrapperException` / `KeeperException`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use zookeeper_client::{Error, EventType, SessionState, Stat, WatchedEvent};

/// The eleven lines of zkCli's `StatPrinter`, each ending with a newline. Dates are printed in
/// `zone`, as Java's `Date.toString()` prints them in the default time zone.
pub(crate) fn format_stat(stat: &Stat, zone: &TimeZone) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        java_date(stat.ctime, zone),
        stat.mzxid,
        java_date(stat.mtime, zone),
        stat.pzxid,
        stat.cversion,
        stat.version,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    )
}

/// Milliseconds since the epoch as Java's `Date.toString()`: `Thu Jan 01 00:00:00 UTC 1970`.
/// A value no calendar can hold (a corrupt stat) is printed as the raw number.
pub(crate) fn java_date(epoch_ms: i64, zone: &TimeZone) -> String {
    match Timestamp::from_millisecond(epoch_ms) {
        Ok(timestamp) => timestamp
            .to_zoned(zone.clone())
            .strftime("%a %b %d %H:%M:%S %Z %Y")
            .to_string(),
        Err(_) => epoch_ms.to_string(),
    }
}

/// A list as Java's `AbstractCollection.toString()` prints it: `[a, b]`.
pub(crate) fn java_list<S: AsRef<str>>(items: &[S]) -> String {
    let joined: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", joined.join(", "))
}

/// Java's `Watcher.Event.KeeperState` name of a session state.
pub(crate) fn keeper_state_name(state: SessionState) -> &'static str {
    match state {
        SessionState::Disconnected => "Disconnected",
        SessionState::SyncConnected => "SyncConnected",
        SessionState::AuthFailed => "AuthFailed",
        SessionState::ConnectedReadOnly => "ConnectedReadOnly",
        SessionState::Expired => "Expired",
        SessionState::Closed => "Closed",
    }
}

/// Java's `ZooKeeper.States` name of a session state, as zkCli's prompt shows it.
pub(crate) fn client_state_name(state: SessionState) -> &'static str {
    match state {
        SessionState::Disconnected => "CONNECTING",
        SessionState::SyncConnected => "CONNECTED",
        SessionState::AuthFailed => "AUTH_FAILED",
        SessionState::ConnectedReadOnly => "CONNECTEDREADONLY",
        SessionState::Expired | SessionState::Closed => "CLOSED",
    }
}

/// What zkCli 3.9 prints when a watch fires (`ZooKeeperMain.MyWatcher`): a blank line,
/// `WATCHER::`, a blank line and `WatchedEvent.toString()`, each line ending with a newline.
/// Servers before 3.9 send no zxid with events; the client then reports -1, as Java's does.
pub(crate) fn format_watch_event(event: &WatchedEvent) -> String {
    let event_type = match event.event_type {
        EventType::Session => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
    };
    let path = if event.event_type == EventType::Session {
        "null"
    } else {
        event.path.as_str()
    };
    format!(
        "\nWATCHER::\n\nWatchedEvent state:{} type:{event_type} path:{path} zxid: {}\n",
        keeper_state_name(event.session_state),
        event.zxid
    )
}

/// The same as [`format_watch_event`] for a change of the session's own state.
pub(crate) fn format_state_event(state: SessionState) -> String {
    format!(
        "\nWATCHER::\n\nWatchedEvent state:{} type:None path:null zxid: -1\n",
        keeper_state_name(state)
    )
}

/// The one-line message zkCli prints for a failed operation on `path`: `CliWrapperException`'s
/// wording where it has one ("Node does not exist: /x"), else `KeeperException.getMessage()`
/// ("KeeperErrorCode = ConnectionLoss for /x").
pub(crate) fn keeper_error_message(error: &Error, path: Option<&str>) -> String {
    let path_text = path.unwrap_or("null");
    match error {
        Error::NoNode => format!("Node does not exist: {path_text}"),
        Error::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path_text}"),
        Error::NodeExists => format!("Node already exists: {path_text}"),
        Error::NotEmpty => format!("Node not empty: {path_text}"),
        Error::NotReadOnly => format!("Not a read-only call: {path_text}"),
        Error::InvalidAcl => format!("Acl is not valid : {path_text}"),
        Error::NoAuth => format!("Insufficient permission : {path_text}"),
        Error::BadArguments(_) => format!("Arguments are not valid : {path_text}"),
        Error::BadVersion => format!("version No is not valid : {path_text}"),
        Error::QuotaExceeded => format!("Quota has exceeded : {path_text}"),
        other => match keeper_code_message(other) {
            Some(code) => match path {
                Some(path) => format!("KeeperErrorCode = {code} for {path}"),
                None => format!("KeeperErrorCode = {code}"),
            },
            // Client-side failures with no ZooKeeper code (timeouts, a closed client, a reply
            // that could not be decoded): the client library's own words.
            None => match path {
                Some(path) => format!("{other} for {path}"),
                None => other.to_string(),
            },
        },
    }
}

/// `KeeperException.getCodeMessage` for the errors that carry a ZooKeeper error code.
fn keeper_code_message(error: &Error) -> Option<String> {
    let message = match error {
        Error::ConnectionLoss => "ConnectionLoss",
        Error::MarshallingError => "MarshallingError",
        Error::Unimplemented => "Unimplemented",
        Error::SessionExpired => "Session expired",
        Error::AuthFailed => "AuthFailed",
        Error::SessionMoved => "Session moved",
        Error::NoWatcher => "No such watcher",
        Error::ReconfigDisabled => "Reconfig is disabled",
        Error::Throttled => "Op throttled due to high load",
        Error::RuntimeInconsistent => "RuntimeInconsistency",
        Error::UnexpectedErrorCode(code) => return Some(code_message(*code)),
        _ => return None,
    };
    Some(message.to_owned())
}

/// `KeeperException.getCodeMessage` for a raw error code the client library has no variant for.
fn code_message(code: i32) -> String {
    let message = match code {
        -1 => "SystemError",
        -2 => "RuntimeInconsistency",
        -3 => "DataInconsistency",
        -4 => "ConnectionLoss",
        -7 => "OperationTimeout",
        -13 => "NewConfigNoQuorum",
        -14 => "ReconfigInProgress",
        -100 => "APIError",
        -113 => "Invalid callback",
        -120 => "Ephemeral node on local session",
        -122 => "RequestTimeout",
        _ => return format!("Unknown error {code}"),
    };
    message.to_owned()
}

/// The ZooKeeper error code of a failure, for messages that print it (`Sync has failed. rc=-4`).
pub(crate) fn keeper_error_code(error: &Error) -> Option<i32> {
    let code = match error {
        Error::ConnectionLoss => -4,
        Error::MarshallingError => -5,
        Error::Unimplemented => -6,
        Error::BadArguments(_) => -8,
        Error::RuntimeInconsistent => -2,
        Error::NoNode => -101,
        Error::NoAuth => -102,
        Error::BadVersion => -103,
        Error::NoChildrenForEphemerals => -108,
        Error::NodeExists => -110,
        Error::NotEmpty => -111,
        Error::SessionExpired => -112,
        Error::InvalidAcl => -114,
        Error::AuthFailed => -115,
        Error::SessionMoved => -118,
        Error::NotReadOnly => -119,
        Error::NoWatcher => -121,
        Error::ReconfigDisabled => -123,
        Error::QuotaExceeded => -125,
        Error::Throttled => -127,
        Error::UnexpectedErrorCode(code) => *code,
        _ => return None,
    };
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stat() -> Stat {
        Stat {
            czxid: 3,
            mzxid: 0x1_0000_0006,
            pzxid: 3,
            ctime: 0,
            mtime: 1_795_009_736_123,
            version: 1,
            cversion: 0,
            aversion: 2,
            ephemeral_owner: 0x1000_0a3c_2b5e_0001,
            data_length: 9,
            num_children: 0,
        }
    }

    #[test]
    fn stat_block_matches_zkcli() {
        let expected = "cZxid = 0x3\n\
                        ctime = Thu Jan 01 00:00:00 UTC 1970\n\
                        mZxid = 0x100000006\n\
                        mtime = Wed Nov 18 13:48:56 UTC 2026\n\
                        pZxid = 0x3\n\
                        cversion = 0\n\
                        dataVersion = 1\n\
                        aclVersion = 2\n\
                        ephemeralOwner = 0x10000a3c2b5e0001\n\
                        dataLength = 9\n\
                        numChildren = 0\n";
        assert_eq!(format_stat(&sample_stat(), &TimeZone::UTC), expected);
    }

    #[test]
    fn negative_ids_print_as_javas_unsigned_hex() {
        let stat = Stat {
            ephemeral_owner: -1,
            ..sample_stat()
        };
        assert!(
            format_stat(&stat, &TimeZone::UTC).contains("ephemeralOwner = 0xffffffffffffffff\n")
        );
    }

    #[test]
    fn dates_out_of_range_print_raw() {
        assert_eq!(java_date(i64::MAX, &TimeZone::UTC), i64::MAX.to_string());
    }

    #[test]
    fn lists_print_like_java() {
        assert_eq!(java_list::<&str>(&[]), "[]");
        assert_eq!(java_list(&["/a", "/b/c"]), "[/a, /b/c]");
    }

    #[test]
    fn node_errors_use_cli_wrapper_wording() {
        let cases = [
            (Error::NoNode, "Node does not exist: /x"),
            (Error::NodeExists, "Node already exists: /x"),
            (Error::NotEmpty, "Node not empty: /x"),
            (Error::BadVersion, "version No is not valid : /x"),
            (Error::NoAuth, "Insufficient permission : /x"),
            (Error::InvalidAcl, "Acl is not valid : /x"),
            (
                Error::NoChildrenForEphemerals,
                "Ephemerals cannot have children: /x",
            ),
            (
                Error::BadArguments(&"server error"),
                "Arguments are not valid : /x",
            ),
            (
                Error::ConnectionLoss,
                "KeeperErrorCode = ConnectionLoss for /x",
            ),
            (
                Error::SessionExpired,
                "KeeperErrorCode = Session expired for /x",
            ),
            (
                Error::Unimplemented,
                "KeeperErrorCode = Unimplemented for /x",
            ),
            (
                Error::UnexpectedErrorCode(-7),
                "KeeperErrorCode = OperationTimeout for /x",
            ),
            (
                Error::UnexpectedErrorCode(-999),
                "KeeperErrorCode = Unknown error -999 for /x",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(keeper_error_message(&error, Some("/x")), expected);
        }
        assert_eq!(
            keeper_error_message(&Error::AuthFailed, None),
            "KeeperErrorCode = AuthFailed"
        );
        assert_eq!(
            keeper_error_message(&Error::Timeout, Some("/x")),
            "timeout for /x"
        );
    }

    #[test]
    fn error_codes_are_zookeepers() {
        assert_eq!(keeper_error_code(&Error::NoNode), Some(-101));
        assert_eq!(keeper_error_code(&Error::ConnectionLoss), Some(-4));
        assert_eq!(keeper_error_code(&Error::UnexpectedErrorCode(-7)), Some(-7));
        assert_eq!(keeper_error_code(&Error::Timeout), None);
    }

    #[test]
    fn node_events_print_like_zkcli_3_9() {
        let event = WatchedEvent::new(EventType::NodeDataChanged, "/w").with_zxid(0x1c);
        assert_eq!(
            format_watch_event(&event),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/w zxid: 28\n"
        );
        let session = WatchedEvent::new_session(SessionState::Expired);
        assert_eq!(
            format_watch_event(&session),
            "\nWATCHER::\n\nWatchedEvent state:Expired type:None path:null zxid: -1\n"
        );
    }

    #[test]
    fn state_events_print_like_zkcli() {
        assert_eq!(
            format_state_event(SessionState::Disconnected),
            "\nWATCHER::\n\nWatchedEvent state:Disconnected type:None path:null zxid: -1\n"
        );
        assert_eq!(client_state_name(SessionState::SyncConnected), "CONNECTED");
    }
}
