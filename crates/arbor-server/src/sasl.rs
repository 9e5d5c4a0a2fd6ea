//! SASL DIGEST-MD5 (RFC 2831) on the server side, as ZooKeeper runs it: users and passwords
//! from the `Server` section of a JAAS file (`user_<name>="<password>"`, what
//! `DigestLoginModule` reads), realm `zk-sasl-md5` and digest-uri `zookeeper/zk-sasl-md5`
//! (ZooKeeper hard-codes both, `SecurityUtils`), quality of protection `auth` only. A client
//! that authenticates gains the identity `sasl:<user>` (ZooKeeper's `SASLAuthenticationProvider`
//! ids), and `super` too when it is `zookeeper.superUser`.
//!
//! The exchange, one SASL request (opcode 102) per step:
//! 1. client: empty token → server: challenge (`realm`, `nonce`, `qop`, `charset`, `algorithm`);
//! 2. client: digest response → server: `rspauth=…` proving it knows the password too.
//!
//! The connection task runs this state machine, so the core only learns the outcome.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbor_proto::Id;
use md5::{Digest, Md5};
use thiserror::Error;

/// ZooKeeper's DIGEST-MD5 realm and server name (`SecurityUtils`/`ZooKeeperSaslServer`).
pub(crate) const REALM: &str = "zk-sasl-md5";
/// The protocol of the digest-uri.
const SERVICE: &str = "zookeeper";
/// ZooKeeper's identity scheme for SASL users.
pub(crate) const SASL_SCHEME: &str = "sasl";
/// The JAAS section ZooKeeper's server reads (`zookeeper.sasl.serverconfig`).
pub(crate) const JAAS_SERVER_SECTION: &str = "Server";
/// Bytes a client token may have (a DIGEST-MD5 response is a few hundred).
const TOKEN_BYTES_MAX: usize = 4096;
/// Bytes a JAAS file may have.
const JAAS_BYTES_MAX: u64 = 1024 * 1024;

/// Why a JAAS file could not be used.
#[derive(Debug, Error)]
pub enum JaasError {
    /// The file could not be read.
    #[error("cannot read JAAS file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not parse.
    #[error("JAAS file {path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The users SASL DIGEST-MD5 accepts, with their passwords.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslUsers {
    users: BTreeMap<String, String>,
    super_user: Option<String>,
}

impl SaslUsers {
    /// Users from the `Server` section of a JAAS file; none when the file has no such section
    /// (kazoo's harness always writes the file, empty when SASL is off).
    ///
    /// # Errors
    /// [`JaasError`] when the file cannot be read or does not parse.
    pub fn from_jaas_file(path: &Path) -> Result<SaslUsers, JaasError> {
        let read_error = |source| JaasError::Read {
            path: path.to_owned(),
            source,
        };
        let length = std::fs::metadata(path).map_err(read_error)?.len();
        if length > JAAS_BYTES_MAX {
            return Err(JaasError::Syntax {
                path: path.to_owned(),
                reason: "file too large".into(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let sections = parse_jaas(&text).map_err(|reason| JaasError::Syntax {
            path: path.to_owned(),
            reason,
        })?;
        let mut users = BTreeMap::new();
        if let Some(modules) = sections.get(JAAS_SERVER_SECTION) {
            for options in modules {
                for (key, value) in options {
                    if let Some(user) = key.strip_prefix("user_") {
                        users.insert(user.to_owned(), value.clone());
                    }
                }
            }
        }
        Ok(SaslUsers {
            users,
            super_user: None,
        })
    }

    /// Users given directly (tests, TOML).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> SaslUsers {
        SaslUsers {
            users: pairs
                .into_iter()
                .map(|(user, password)| (user.to_owned(), password.to_owned()))
                .collect(),
            super_user: None,
        }
    }

    /// Makes `user` the super user once authenticated (ZooKeeper's `zookeeper.superUser`).
    pub fn with_super_user(mut self, user: Option<String>) -> SaslUsers {
        self.super_user = user;
        self
    }

    /// Whether any user is configured (otherwise SASL answers AuthFailed).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    fn identities_of(&self, user: &str) -> Vec<Id> {
        let mut identities = Vec::with_capacity(2);
        if self.super_user.as_deref() == Some(user) {
            identities.push(Id::new("super", ""));
        }
        identities.push(Id::new(SASL_SCHEME, user));
        identities
    }
}

/// `Section { module flag key="value" ...; module ...; };` → section → modules → options.
type JaasSections = BTreeMap<String, Vec<BTreeMap<String, String>>>;

fn parse_jaas(text: &str) -> Result<JaasSections, String> {
    let tokens = jaas_tokens(text)?;
    let mut sections = JaasSections::new();
    let mut index = 0;
    let next = |index: &mut usize| -> Option<&JaasToken> {
        let token = tokens.get(*index);
        *index += 1;
        token
    };
    while let Some(token) = next(&mut index) {
        let JaasToken::Word(name) = token else {
            return Err(format!("expected a section name, found {token:?}"));
        };
        if next(&mut index) != Some(&JaasToken::Open) {
            return Err(format!("expected '{{' after {name}"));
        }
        let mut modules = Vec::new();
        loop {
            match next(&mut index) {
                Some(JaasToken::Close) => break,
                Some(JaasToken::Word(_module)) => {
                    // The control flag (required, requisite, sufficient, optional).
                    let Some(JaasToken::Word(_flag)) = next(&mut index) else {
                        return Err(format!("section {name}: a login module needs a flag"));
                    };
                    let mut options = BTreeMap::new();
                    loop {
                        match next(&mut index) {
                            Some(JaasToken::Semicolon) => break,
                            Some(JaasToken::Word(key)) => {
                                if next(&mut index) != Some(&JaasToken::Equals) {
                                    return Err(format!("section {name}: {key} needs '='"));
                                }
                                let value = match next(&mut index) {
                                    Some(JaasToken::Word(value) | JaasToken::Quoted(value)) => {
                                        value.clone()
                                    }
                                    other => {
                                        return Err(format!(
                                            "section {name}: {key}= needs a value, found {other:?}"
                                        ));
                                    }
                                };
                                options.insert(key.clone(), value);
                            }
                            other => {
                                return Err(format!("section {name}: unexpected {other:?}"));
                            }
                        }
                    }
                    modules.push(options);
                }
                other => return Err(format!("section {name}: unexpected {other:?}")),
            }
        }
        // The closing brace is followed by a semicolon.
        if tokens.get(index) == Some(&JaasToken::Semicolon) {
            index += 1;
        }
        sections.entry(name.clone()).or_default().extend(modules);
    }
    Ok(sections)
}

#[derive(Debug, PartialEq, Eq)]
enum JaasToken {
    Word(String),
    Quoted(String),
    Open,
    Close,
    Semicolon,
    Equals,
}

fn jaas_tokens(text: &str) -> Result<Vec<JaasToken>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '{' => tokens.push(JaasToken::Open),
            '}' => tokens.push(JaasToken::Close),
            ';' => tokens.push(JaasToken::Semicolon),
            '=' => tokens.push(JaasToken::Equals),
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    previous = c;
                }
                if !closed {
                    return Err("unterminated comment".into());
                }
            }
            '"' => {
                let mut value = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err("unterminated string".into());
                }
                tokens.push(JaasToken::Quoted(value));
            }
            c => {
                let mut word = String::from(c);
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(JaasToken::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// What one step of the exchange produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SaslStep {
    /// Send this token and wait for the client's next one.
    Challenge(Vec<u8>),
    /// Authenticated: send this token; the connection gains these identities.
    Success {
        /// `rspauth=…`.
        token: Vec<u8>,
        /// `sasl:<user>` (and `super` for the super user).
        identities: Vec<Id>,
        /// Who, for the log.
        user: String,
    },
    /// Refused: answer AuthFailed and close the connection (as ZooKeeper does).
    Failure(String),
}

#[derive(Debug)]
enum State {
    Start,
    Challenged { nonce: String },
    Finished,
}

/// One connection's DIGEST-MD5 exchange.
#[derive(Debug)]
pub(crate) struct DigestMd5Server {
    state: State,
}

impl DigestMd5Server {
    pub(crate) fn new() -> DigestMd5Server {
        DigestMd5Server {
            state: State::Start,
        }
    }

    /// Consumes the client's next token. `nonce` is the fresh random nonce to use if this
    /// step sends the challenge (passed in so tests are deterministic).
    pub(crate) fn step(&mut self, users: &SaslUsers, token: &[u8], nonce: &str) -> SaslStep {
        if token.len() > TOKEN_BYTES_MAX {
            self.state = State::Finished;
            return SaslStep::Failure("SASL token too large".into());
        }
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start if token.is_empty() => {
                self.state = State::Challenged {
                    nonce: nonce.to_owned(),
                };
                SaslStep::Challenge(
                    format!(
                        "realm=\"{REALM}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,\
                         algorithm=md5-sess"
                    )
                    .into_bytes(),
                )
            }
            State::Start => SaslStep::Failure("expected an empty initial DIGEST-MD5 token".into()),
            State::Challenged { nonce } => verify_response(users, token, &nonce),
            State::Finished => SaslStep::Failure("SASL exchange already finished".into()),
        }
    }
}

fn verify_response(users: &SaslUsers, token: &[u8], nonce: &str) -> SaslStep {
    let fail = |reason: &str| SaslStep::Failure(reason.to_owned());
    let Ok(text) = std::str::from_utf8(token) else {
        return fail("response is not UTF-8");
    };
    let Some(directives) = parse_directives(text) else {
        return fail("response does not parse");
    };
    let get = |key: &str| directives.get(key).map(String::as_str);
    let Some(user) = get("username") else {
        return fail("no username");
    };
    let Some(password) = users.password(user) else {
        return fail("unknown user");
    };
    if get("nonce") != Some(nonce) {
        return fail("nonce mismatch");
    }
    if get("nc") != Some("00000001") {
        return fail("unexpected nonce count");
    }
    let qop = get("qop").unwrap_or("auth");
    if qop != "auth" {
        return fail("only qop=auth is offered");
    }
    let realm = get("realm").unwrap_or("");
    if !realm.is_empty() && realm != REALM {
        return fail("unknown realm");
    }
    let Some(cnonce) = get("cnonce") else {
        return fail("no cnonce");
    };
    let Some(digest_uri) = get("digest-uri") else {
        return fail("no digest-uri");
    };
    let expected_uri = format!("{SERVICE}/{REALM}");
    if !digest_uri.eq_ignore_ascii_case(&expected_uri) {
        return fail("digest-uri mismatch");
    }
    let authzid = get("authzid");
    if authzid.is_some_and(|authzid| authzid != user) {
        return fail("authorization id differs from the user");
    }
    let Some(response) = get("response") else {
        return fail("no response");
    };
    let nc = "00000001";
    let a1 = a1_hash(user, realm, password, nonce, cnonce, authzid);
    let expected = response_hash(
        &a1,
        nonce,
        nc,
        cnonce,
        qop,
        &format!("AUTHENTICATE:{digest_uri}"),
    );
    if !constant_time_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    ) {
        return fail("wrong password");
    }
    let rspauth = response_hash(&a1, nonce, nc, cnonce, qop, &format!(":{digest_uri}"));
    SaslStep::Success {
        token: format!("rspauth={rspauth}").into_bytes(),
        identities: users.identities_of(user),
        user: user.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `H(A1)` for md5-sess: `MD5(MD5(user:realm:password) ":" nonce ":" cnonce [":" authzid])`.
fn a1_hash(
    user: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    authzid: Option<&str>,
) -> String {
    let inner = Md5::digest(format!("{user}:{realm}:{password}").as_bytes());
    let mut a1 = Md5::new();
    a1.update(inner);
    a1.update(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(authzid) = authzid {
        a1.update(format!(":{authzid}").as_bytes());
    }
    hex(&a1.finalize())
}

/// `HEX(KD(HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2))))`, RFC 2831 §2.1.2.1.
fn response_hash(a1: &str, nonce: &str, nc: &str, cnonce: &str, qop: &str, a2: &str) -> String {
    let a2 = hex(&Md5::digest(a2.as_bytes()));
    hex(&Md5::digest(
        format!("{a1}:{nonce}:{nc}:{cnonce}:{qop}:{a2}").as_bytes(),
    ))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `key=value` or `key="quoted \" value"` pairs separated by commas (RFC 2831 §7.1).
/// A repeated directive is refused.
fn parse_directives(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        chars.next()?; // '='
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => value.push(chars.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let key = key.trim().to_ascii_lowercase();
        if out.insert(key, value.trim().to_owned()).is_some() {
            return None;
        }
    }
}

/// A fresh nonce: 24 random bytes, hex.
pub(crate) fn fresh_nonce() -> String {
    hex(&rand::random::<[u8; 24]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What pure-sasl (kazoo's SASL library) sends for a challenge.
    fn client_response(user: &str, password: &str, nonce: &str, cnonce: &str) -> String {
        let uri = "zookeeper/zk-sasl-md5";
        let a1 = a1_hash(user, REALM, password, nonce, cnonce, None);
        let response = response_hash(
            &a1,
            nonce,
            "00000001",
            cnonce,
            "auth",
            &format!("AUTHENTICATE:{uri}"),
        );
        format!(
            "qop=auth,realm=\"{REALM}\",username=\"{user}\",nonce=\"{nonce}\",cnonce=\"{cnonce}\",\
             nc=00000001,digest-uri=\"{uri}\",response={response}"
        )
    }

    #[test]
    fn jaas_server_section_gives_the_users() {
        let dir = std::env::temp_dir().join(format!("arbor-jaas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jaas.conf");
        std::fs::write(
            &path,
            "// kazoo's file\nServer {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n    \
             user_super=\"super_secret\"\n    user_jaasuser=\"jaas_password\";\n};\n\
             Client { x required user=\"a\" /* c */ password=\"b\"; };\n",
        )
        .unwrap();
        let users = SaslUsers::from_jaas_file(&path).unwrap();
        assert_eq!(users.password("jaasuser"), Some("jaas_password"));
        assert_eq!(users.password("super"), Some("super_secret"));
        assert_eq!(users.password("a"), None);
        std::fs::write(&path, "").unwrap();
        assert!(SaslUsers::from_jaas_file(&path).unwrap().is_empty());
        std::fs::write(&path, "Server { m required user_a=\"x ;").unwrap();
        assert!(SaslUsers::from_jaas_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn digest_md5_exchange_authenticates_the_right_password_only() {
        let users = SaslUsers::from_pairs([("jaasuser", "jaas_password")])
            .with_super_user(Some("jaasuser".into()));
        let mut server = DigestMd5Server::new();
        let SaslStep::Challenge(challenge) = server.step(&users, b"", "n0nce") else {
            panic!("expected a challenge");
        };
        let challenge = String::from_utf8(challenge).unwrap();
        assert!(challenge.contains("nonce=\"n0nce\""), "{challenge}");
        let response = client_response("jaasuser", "jaas_password", "n0nce", "c1");
        match server.step(&users, response.as_bytes(), "unused") {
            SaslStep::Success {
                token, identities, ..
            } => {
                let expected_rspauth = response_hash(
                    &a1_hash("jaasuser", REALM, "jaas_password", "n0nce", "c1", None),
                    "n0nce",
                    "00000001",
                    "c1",
                    "auth",
                    ":zookeeper/zk-sasl-md5",
                );
                assert_eq!(token, format!("rspauth={expected_rspauth}").into_bytes());
                assert_eq!(
                    identities,
                    vec![Id::new("super", ""), Id::new("sasl", "jaasuser")]
                );
            }
            other => panic!("{other:?}"),
        }
        // Wrong password, unknown user, replayed exchange: refused.
        for (user, password) in [("jaasuser", "nope"), ("baduser", "badpassword")] {
            let mut server = DigestMd5Server::new();
            server.step(&users, b"", "n1");
            let response = client_response(user, password, "n1", "c");
            assert!(matches!(
                server.step(&users, response.as_bytes(), "x"),
                SaslStep::Failure(_)
            ));
            assert!(matches!(
                server.step(&users, b"", "x"),
                SaslStep::Failure(_)
            ));
        }
        // A stale nonce is refused.
        let mut server = DigestMd5Server::new();
        server.step(&users, b"", "fresh");
        let response = client_response("jaasuser", "jaas_password", "stale", "c");
        assert!(matches!(
            server.step(&users, response.as_bytes(), "x"),
            SaslStep::Failure(_)
        ));
    }

    #[test]
    fn directives_parse_quotes_and_refuse_duplicates() {
        let parsed = parse_directives("a=1, b=\"x,\\\"y\" ,c=").unwrap();
        assert_eq!(parsed["a"], "1");
        assert_eq!(parsed["b"], "x,\"y");
        assert_eq!(parsed["c"], "");
        assert!(parse_directives("a=1,a=2").is_none());
        assert!(parse_directives("a=\"open").is_none());
        // Arbitrary bytes never panic.
        for text in ["=", ",,,", "\"", "a", "a=\"\\"] {
            let _ = parse_directives(text);
        }
    }
}
