//! Lock demo: run it in two terminals against one server and watch them take turns.
//!
//! ```text
//! arbor server                                      # terminal 0 (127.0.0.1:2181)
//! cargo run -p arbor-recipes --example lock         # terminal 1
//! cargo run -p arbor-recipes --example lock         # terminal 2
//! ```
//!
//! Arguments: `[connect string] [name]` (default `127.0.0.1:2181` and the process id). Each
//! process takes the lock `/arbor-demo/lock`, holds it for a few seconds, gives it back and
//! queues again. Stop one with Ctrl-C while it holds the lock: the other gets it at once. Stop
//! the server, or cut the holder off the network: the holder says STOP (it is no longer sure
//! it holds the lock) before the server could expire its session and hand the lock on. A
//! process that is itself frozen (Ctrl-Z) cannot be told anything until it runs again; see
//! the crate documentation on process pauses.

use std::time::Duration;

use arbor_recipes::{Hold, Mutex};

const LOCK_PATH: &str = "/arbor-demo/lock";
const HOLD_FOR: Duration = Duration::from_secs(3);
const PAUSE_BETWEEN: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let connect = args.next().unwrap_or_else(|| "127.0.0.1:2181".to_owned());
    let name = args
        .next()
        .unwrap_or_else(|| format!("process-{}", std::process::id()));
    let client = zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&connect)
        .await?;
    println!(
        "{name}: connected to {connect} (session {})",
        client.session_id()
    );
    let mut lock = Mutex::new(&client, LOCK_PATH)?.with_node_data(name.clone());
    loop {
        println!("{name}: waiting for {LOCK_PATH} ...");
        tokio::select! {
            acquired = lock.acquire() => acquired?,
            _ = tokio::signal::ctrl_c() => break,
        }
        let mut hold = lock.hold_watch().ok_or("held without a watch")?;
        println!(
            "{name}: I hold the lock ({}); working for {HOLD_FOR:?}",
            lock.lock_path().unwrap_or_default()
        );
        let stop = tokio::select! {
            _ = tokio::time::sleep(HOLD_FOR) => false,
            state = hold.not_held() => {
                println!("{name}: STOP - the lock is {state:?}: I no longer act as its holder");
                state == Hold::Lost
            }
            _ = tokio::signal::ctrl_c() => true,
        };
        if let Err(error) = lock.release().await {
            println!("{name}: release failed: {error}");
        } else {
            println!("{name}: released the lock");
        }
        if stop {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(PAUSE_BETWEEN) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("{name}: bye");
    Ok(())
}
