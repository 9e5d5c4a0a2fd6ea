//! Leader-election demo: run it in two (or more) terminals against one server; one leads,
//! the others wait, and when the leader goes away another takes over.
//!
//! ```text
//! arbor server                                      # terminal 0 (127.0.0.1:2181)
//! cargo run -p arbor-recipes --example leader       # terminal 1
//! cargo run -p arbor-recipes --example leader       # terminal 2
//! ```
//!
//! Arguments: `[connect string] [id]` (default `127.0.0.1:2181` and the process id). The
//! election is `/arbor-demo/leader`, laid out like Curator's `LeaderSelector`, so a Java
//! Curator process can join it too. Stop the leader with Ctrl-C: another takes over at once.
//! Stop the server (or cut the leader off the network): the leader is told at once and stops
//! its work, before its session can expire and another one lead.

use std::time::Duration;

use arbor_recipes::{LeaderSelector, Outcome};

const ELECTION_PATH: &str = "/arbor-demo/leader";
const TERM: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let connect = args.next().unwrap_or_else(|| "127.0.0.1:2181".to_owned());
    let id = args
        .next()
        .unwrap_or_else(|| format!("process-{}", std::process::id()));
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&connect)
        .await?;
    println!(
        "{id}: connected to {connect} (session {})",
        client.session_id()
    );
    let mut selector = LeaderSelector::new(&client, ELECTION_PATH, &id)?;
    loop {
        let waiting = selector.participants().await?.len();
        println!("{id}: waiting to lead ({waiting} participants before joining)");
        let turn = selector.run_once(|mut leadership| {
            let id = id.clone();
            async move {
                println!("{id}: I AM THE LEADER for up to {TERM:?}");
                let mut ticks = TERM.as_secs();
                while ticks > 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(TICK) => {}
                        state = leadership.lost() => {
                            println!("{id}: leadership {state:?}");
                            return;
                        }
                    }
                    ticks -= 1;
                    println!("{id}:   leading, {ticks}s left in this term");
                }
            }
        });
        let outcome = tokio::select! {
            outcome = turn => outcome?,
            _ = tokio::signal::ctrl_c() => break,
        };
        match outcome {
            Outcome::Completed(()) => println!("{id}: term over, giving others a chance"),
            Outcome::Cancelled(state) => {
                println!("{id}: STOPPED leading at once: leadership {state:?}");
            }
        }
    }
    println!("{id}: bye");
    Ok(())
}
