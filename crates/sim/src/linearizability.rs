//! Linearizability checker (in progress).
