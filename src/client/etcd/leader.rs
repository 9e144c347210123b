//! The `leader` model's lookup: who leads, asked of every member, shared by every operation that
//! needs it; and every member's Status.

use std::time::Duration;

use super::proto::*;
use super::EtcdClient;
use crate::client::grpc::CallError;
use crate::clock::now_ns;

impl EtcdClient {
    /// Ask every endpoint who leads (Status, in parallel, within `timeout`) and point
    /// `current` at the leader named with the highest term.
    pub(super) async fn lookup(&self, timeout: Duration) {
        {
            let mut s = self.state();
            s.lookup_running = true;
        }
        let statuses = self.statuses(timeout).await;
        let mut best: Option<(u64, u64)> = None; // (term, leader id)
        {
            let mut s = self.state();
            for (i, st) in statuses.iter().enumerate() {
                if let Some(st) = st {
                    if let Some(h) = &st.header {
                        s.eps[i].member_id = h.member_id;
                    }
                    if st.leader != 0 && best.is_none_or(|(t, _)| st.raft_term > t) {
                        best = Some((st.raft_term, st.leader));
                    }
                }
            }
        }
        let mut found = best.and_then(|(_, id)| self.index_of(id));
        if found.is_none() {
            if let Some((_, id)) = best {
                self.learn_members(timeout).await;
                found = self.index_of(id);
            }
        }
        let mut s = self.state();
        if let Some(i) = found {
            s.current = i;
        } else {
            // No leader known: try the next endpoint meanwhile.
            s.current = (s.current + 1) % s.eps.len();
        }
        s.lookup_running = false;
        s.last_lookup = now_ns();
        drop(s);
        self.lookup_done.notify_waiters();
    }

    pub(super) fn index_of(&self, member_id: u64) -> Option<usize> {
        self.state()
            .eps
            .iter()
            .position(|e| e.member_id == member_id && member_id != 0)
    }

    /// Map member ids to endpoints with MemberList (a leader this client cannot reach still
    /// has a client URL).
    pub(super) async fn learn_members(&self, timeout: Duration) {
        let n = self.state().eps.len();
        let deadline = now_ns() + timeout.as_nanos() as u64;
        for i in 0..n {
            let Ok(c) = self.conn(i, deadline).await else {
                continue;
            };
            let left = Duration::from_nanos(deadline.saturating_sub(now_ns()));
            if let Ok(r) = c
                .unary::<_, MemberListResponse>(MEMBER_LIST, &MemberListRequest {}, left, false)
                .await
            {
                let mut s = self.state();
                for m in r.members {
                    for e in s.eps.iter_mut() {
                        if m.client_urls
                            .iter()
                            .any(|u| u.trim_end_matches('/') == e.url)
                        {
                            e.member_id = m.id;
                        }
                    }
                }
                return;
            }
        }
    }

    /// Every endpoint's Status (None where it did not answer within `timeout`).
    pub async fn statuses(&self, timeout: Duration) -> Vec<Option<StatusResponse>> {
        let n = self.state().eps.len();
        let deadline = now_ns() + timeout.as_nanos() as u64;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let c = self.clone();
            set.spawn(async move {
                let Ok(conn) = c.conn(i, deadline).await else {
                    return (i, None);
                };
                let left = Duration::from_nanos(deadline.saturating_sub(now_ns()));
                let r = conn
                    .unary::<_, StatusResponse>(STATUS, &StatusRequest {}, left, false)
                    .await;
                if matches!(r, Err(CallError::Transport { .. })) {
                    c.state().eps[i].conn = None;
                }
                (i, r.ok())
            });
        }
        let mut out = vec![None; n];
        while let Some(r) = set.join_next().await {
            if let Ok((i, s)) = r {
                out[i] = s;
            }
        }
        out
    }
}
