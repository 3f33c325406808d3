//! Tally's protobuf types.
//!
//! * The etcd v3 client API — [`etcdserverpb`], [`mvccpb`], [`authpb`], [`v3lockpb`], [`v3electionpb`] — defined
//!   by Tally's own `.proto` files, wire-compatible with etcd v3.5 (same packages, names, field numbers and gRPC
//!   paths such as `/etcdserverpb.KV/Range`), with tonic clients and servers for every service.
//! * Tally's peer protocol and replicated command format, package `tally.v1` ([`tally_v1`]).
//!
//! The generated modules sit at the crate root in the same tree as their protobuf packages, so that cross-package
//! references in generated code (`super::mvccpb`, `super::super::etcdserverpb`) resolve.

pub mod codec;

/// etcd's `etcdserverpb` package: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// etcd's `mvccpb` package: `KeyValue` and `Event`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's `authpb` package: users, roles and permissions.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's `v3lockpb` package: the `Lock` service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

/// etcd's `v3electionpb` package: the `Election` service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

/// Tally's own protobuf packages.
pub mod tally {
    /// Package `tally.v1`: raft peer messages and the replicated `Command`.
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        tonic::include_proto!("tally.v1");
    }
}

/// Package `tally.v1` (alias of [`tally::v1`]).
pub use tally::v1 as tally_v1;

pub use prost::Message;
