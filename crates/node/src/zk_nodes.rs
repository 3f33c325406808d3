//! ZooKeeper's containers and TTL nodes past their time, deleted through the log by the
//! leader, as ZooKeeper's `ContainerManager` does on its leader (there every 60 s; here every
//! second by default, `--zk-container-check-interval`, so a recipe's empty container goes soon). Each deletion is a `DeleteIfExpired`
//! entry stamped with the leader's clock; applying it checks the node is still expired then,
//! so a child created meanwhile saves it.

use tally_consensus::Consensus;
use tally_raft::Role;
use tally_zk::ZkCommand;

use crate::{Host, Node};

impl<H: Host> Node<H> {
    /// Leader, at most every `zk_container_check_interval`: proposes the deletion of every expired node.
    pub(crate) fn delete_expired_zk_nodes(&mut self) {
        if self.engine.role() != Role::Leader {
            return;
        }
        let now = self.host.now();
        if self.zk_nodes_checked.is_some_and(|at| now.saturating_duration_since(at) < self.zk_container_check_interval)
        {
            return;
        }
        self.zk_nodes_checked = Some(now);
        let now_ms = self.host.wall_clock_ms();
        let expired = self.sm.read().expect("sm lock").zk.expired_nodes(now_ms);
        for path in expired {
            if !self.propose_own_zk(&ZkCommand::DeleteIfExpired { path }, now_ms) {
                return;
            }
        }
    }
}
