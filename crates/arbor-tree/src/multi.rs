//! `multi`: every operation against a scratch copy of the state (a cheap clone of the
//! persistent maps), committed only if all succeed. One zxid and one time for all; later
//! operations see earlier ones' effects.

use std::iter;

use arbor_proto::{CreateMode, ErrorCode, MultiOp, MultiResponse, OpResult, Response};

use crate::command::Applied;
use crate::ops::{self, CreateArgs, CreateKind, Env, Outcome};
use crate::state::State;

/// Applies a multi. ZooKeeper rejects a request that holds read operations or a create
/// with an unknown mode while deserializing it (`MultiOperationRecord.deserialize` throws
/// IOException, which `PrepRequestProcessor` answers with MarshallingError): so do we, for
/// the whole request. Otherwise the reply is a [`Response::Multi`], success or not.
pub(crate) fn apply_multi(state: &mut State, env: &Env<'_>, ops: &[MultiOp]) -> Applied {
    if ops
        .iter()
        .any(|op| op.is_read() || has_invalid_create_flags(op))
    {
        return Applied::error(ErrorCode::MarshallingError);
    }
    let mut scratch = state.clone();
    let mut results = Vec::with_capacity(ops.len());
    let mut triggers = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        match apply_op(&mut scratch, env, op) {
            Ok((outcome, op_triggers)) => {
                results.push(op_result(op, outcome));
                triggers.extend(op_triggers);
            }
            Err(code) => {
                // DataTree.processTxn(multi): 0 for the ops before, the code, −2 after.
                let results = iter::repeat_n(OpResult::error(ErrorCode::Ok), index)
                    .chain(iter::once(OpResult::error(code)))
                    .chain(iter::repeat_n(
                        OpResult::error(ErrorCode::RuntimeInconsistency),
                        ops.len() - index - 1,
                    ))
                    .collect();
                return Applied::ok(Response::Multi(MultiResponse { results }), Vec::new());
            }
        }
    }
    *state = scratch;
    Applied::ok(Response::Multi(MultiResponse { results }), triggers)
}

fn has_invalid_create_flags(op: &MultiOp) -> bool {
    let flags = match op {
        MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.flags,
        MultiOp::CreateTtl(r) => r.flags,
        _ => return false,
    };
    CreateMode::from_flags(flags).is_none()
}

fn apply_op(state: &mut State, env: &Env<'_>, op: &MultiOp) -> ops::OpResult {
    match op {
        MultiOp::Create(r) => ops::create(state, env, &create_args(CreateKind::Create, r)),
        MultiOp::Create2(r) => ops::create(state, env, &create_args(CreateKind::Create2, r)),
        MultiOp::CreateContainer(r) => {
            ops::create(state, env, &create_args(CreateKind::Container, r))
        }
        MultiOp::CreateTtl(r) => ops::create(state, env, &ttl_create_args(r)),
        MultiOp::Delete(r) => ops::delete(state, env, &r.path, r.version),
        MultiOp::SetData(r) => ops::set_data(state, env, &r.path, r.data.as_deref(), r.version),
        MultiOp::Check(r) => ops::check(state, env, &r.path, r.version),
        MultiOp::GetChildren(_) | MultiOp::GetData(_) => Err(ErrorCode::MarshallingError),
    }
}

/// The arguments of a createTTL request.
pub(crate) fn ttl_create_args(request: &arbor_proto::CreateTtlRequest) -> CreateArgs<'_> {
    CreateArgs {
        kind: CreateKind::Ttl,
        path: &request.path,
        data: request.data.as_deref(),
        acl: &request.acl,
        flags: request.flags,
        ttl_ms: request.ttl,
    }
}

/// The arguments of a create request under a given opcode (TTL −1).
pub(crate) fn create_args(
    kind: CreateKind,
    request: &arbor_proto::CreateRequest,
) -> CreateArgs<'_> {
    CreateArgs {
        kind,
        path: &request.path,
        data: request.data.as_deref(),
        acl: &request.acl,
        flags: request.flags,
        ttl_ms: -1,
    }
}

fn op_result(op: &MultiOp, outcome: Outcome) -> OpResult {
    match outcome {
        Outcome::Created { path, stat } => OpResult::Create {
            path,
            // Plain create's result carries no stat; the others' do (OpResult.CreateResult).
            stat: (!matches!(op, MultiOp::Create(_))).then_some(stat),
        },
        Outcome::Deleted => OpResult::Delete,
        Outcome::DataSet { stat } => OpResult::SetData { stat },
        Outcome::Checked => OpResult::Check,
        Outcome::AclSet { .. } | Outcome::Reconfigured { .. } => {
            panic!("setACL and reconfig are not multi operations")
        }
    }
}
