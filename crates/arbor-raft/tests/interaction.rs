//! Golden interaction tests in the etcd style: every file under `testdata/` is a script of
//! commands with the exact output they must produce. `REWRITE=1` regenerates the outputs
//! (review the diff); expectations are never edited by hand.

mod interaction {
    pub mod datadriven;
    pub mod env;
}

use std::path::PathBuf;

fn run(name: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let mut env = interaction::env::Env::default();
    interaction::datadriven::run_file(&path, |cmd| env.handle(cmd));
}

#[test]
fn election_section_5_2() {
    run("election.txt");
}

#[test]
fn replication_section_5_3() {
    run("replication.txt");
}

#[test]
fn safety_section_5_4() {
    run("safety.txt");
}

#[test]
fn figure_7_logs_converge() {
    run("figure7.txt");
}

#[test]
fn figure_8_prior_term_entry_is_not_committed_by_counting() {
    run("figure8.txt");
}

#[test]
fn pre_vote_and_check_quorum() {
    run("prevote_checkquorum.txt");
}

#[test]
fn read_index_waits_for_the_noop() {
    run("read_index.txt");
}

#[test]
fn snapshot_to_a_new_learner_then_joint_membership_change() {
    run("snapshot_membership.txt");
}
