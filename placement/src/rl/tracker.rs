//! Turns the agent's choices into experiences. `choose` is also called for
//! tentative moves that Beloglazov's loop later undoes (a host is emptied
//! whole or not at all), so a choice counts only once the next update
//! shows the VM on (or moving to) the chosen host. Its outcome is read when
//! the VM has run an interval there: at the next update for a migration,
//! one later for an admission (it is created just before an update and has
//! no energy attributed until the one after). Committed decisions form a
//! chain in the order they were taken; each one's next state is the next
//! decision's observation, and the episode's last is terminal.

use std::collections::VecDeque;

use super::env::{Env, Measures, Obs};
use super::replay::{Experience, Next};
use crate::dynamic::State;

#[derive(Clone, Debug)]
struct Pending {
    v: usize,
    h: usize,
    obs: Obs,
    g: Measures,
    action: usize,
    /// Updates seen when it was taken.
    at: usize,
    admission: bool,
}

#[derive(Clone, Debug)]
struct Link {
    p: Pending,
    dm: Option<Measures>,
}

/// How a run's decisions scored.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Score {
    /// Mean g·Δm under the default goal.
    pub reward: f64,
    /// Mean Δm per measurement.
    pub dm: Measures,
    pub decisions: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Tracker {
    pending: Vec<Pending>,
    chain: VecDeque<Link>,
    updates: usize,
    /// Σ g·Δm and count of scored decisions, under the goal given to `new`.
    reward_sum: f64,
    dm_sum: Measures,
    scored: usize,
    score_goal: Measures,
}

impl Tracker {
    /// Scores decisions under `goal` for the statistics (whatever goal
    /// the agent itself chases).
    pub fn new(goal: Measures) -> Tracker {
        Tracker { score_goal: goal, ..Tracker::default() }
    }

    pub fn record(&mut self, v: usize, h: usize, obs: &Obs, g: Measures, action: usize, admission: bool) {
        // A later attempt for the same VM in the same round supersedes an
        // earlier one that was undone.
        self.pending.retain(|p| p.v != v);
        self.pending.push(Pending { v, h, obs: obs.clone(), g, action, at: self.updates, admission });
    }

    /// After an update (and [`Env::observe`]): the experiences now complete.
    pub fn observe(&mut self, st: &State, env: &Env, step_s: f64) -> Vec<Experience> {
        self.updates += 1;
        for p in std::mem::take(&mut self.pending) {
            let vm = &st.vms[p.v];
            if vm.alive && (vm.host == Some(p.h) || vm.target == Some(p.h)) {
                self.chain.push_back(Link { p, dm: None });
            }
        }
        let now = self.updates;
        let mut gone = Vec::new();
        for (i, l) in self.chain.iter_mut().enumerate() {
            let ready = l.p.at + if l.p.admission { 2 } else { 1 };
            if l.dm.is_some() || now < ready {
                continue;
            }
            if !st.vms[l.p.v].alive {
                gone.push(i);
                continue;
            }
            let out = env.outcome(st, l.p.v, l.p.h, step_s);
            let dm: Measures = std::array::from_fn(|j| out[j] - l.p.obs.m[j]);
            self.reward_sum += self.score_goal.iter().zip(&dm).map(|(a, b)| a * b).sum::<f64>();
            self.scored += 1;
            for (sum, d) in self.dm_sum.iter_mut().zip(&dm) {
                *sum += d;
            }
            l.dm = Some(dm);
        }
        for i in gone.into_iter().rev() {
            self.chain.remove(i);
        }
        let mut out = Vec::new();
        while self.chain.len() >= 2 && self.chain[0].dm.is_some() {
            let l = self.chain.pop_front().expect("two links");
            out.push(experience(l, Some(&self.chain[0].p.obs)));
        }
        out
    }

    /// The episode is over: what is scored becomes experiences (the last
    /// one terminal); the rest is dropped.
    pub fn finish(&mut self) -> Vec<Experience> {
        self.pending.clear();
        let links: Vec<Link> = std::mem::take(&mut self.chain).into_iter().filter(|l| l.dm.is_some()).collect();
        let mut out = Vec::with_capacity(links.len());
        for i in 0..links.len() {
            let next = links.get(i + 1).map(|n| &n.p.obs);
            out.push(experience(links[i].clone(), next));
        }
        self.updates = 0;
        out
    }

    /// The decisions scored since the last call: mean g·Δm, mean Δm, count.
    pub fn take_score(&mut self) -> Score {
        let n = self.scored.max(1) as f64;
        let r = Score { reward: self.reward_sum / n, dm: self.dm_sum.map(|x| x / n), decisions: self.scored };
        (self.reward_sum, self.dm_sum, self.scored) = (0.0, [0.0; 4], 0);
        r
    }
}

fn experience(l: Link, next: Option<&Obs>) -> Experience {
    let p = l.p;
    Experience { s: p.obs.s, mask: p.obs.mask, m: p.obs.m, g: p.g, action: p.action, dm: l.dm.expect("scored"), next: next.map(|o| Next { s: o.s.clone(), mask: o.mask.clone(), m: o.m }) }
}
