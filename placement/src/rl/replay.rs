//! Experiences and the replay memory the value learners sample from:
//! a ring of the most recent `capacity` experiences (the paper keeps the M
//! most recent), sampled uniformly with replacement by the crate's seeded
//! splitmix64 so training is reproducible by seed.

use super::env::Measures;
use crate::rng::SplitMix64;

/// The decision after this one (the next state), as it was observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Next {
    pub s: Vec<f32>,
    pub mask: Vec<bool>,
    pub m: Measures,
}

/// One committed decision and what came of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Experience {
    pub s: Vec<f32>,
    pub mask: Vec<bool>,
    /// The pool's measurements and the goal when it was taken.
    pub m: Measures,
    pub g: Measures,
    pub action: usize,
    /// Outcome minus the pool's measurements at decision time.
    pub dm: Measures,
    /// `None` at the end of an episode.
    pub next: Option<Next>,
}

impl Experience {
    /// The scalar reward g·Δm under goal `g`.
    pub fn reward(&self, g: &Measures) -> f64 {
        Experience::reward_of(g, &self.dm)
    }

    pub fn reward_of(g: &Measures, dm: &Measures) -> f64 {
        g.iter().zip(dm).map(|(a, b)| a * b).sum()
    }
}

/// A sampled minibatch, row-major; terminal rows' next state is zeros with
/// nothing feasible.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub n: usize,
    pub s: Vec<f32>,
    pub actions: Vec<usize>,
    pub m: Vec<Measures>,
    pub g: Vec<Measures>,
    pub dm: Vec<Measures>,
    pub next: Vec<f32>,
    pub next_mask: Vec<Vec<bool>>,
    pub next_m: Vec<Measures>,
    pub done: Vec<bool>,
}

impl Batch {
    pub fn of(items: &[&Experience]) -> Batch {
        let mut b = Batch { n: items.len(), ..Batch::default() };
        for e in items {
            b.s.extend(&e.s);
            b.actions.push(e.action);
            b.m.push(e.m);
            b.g.push(e.g);
            b.dm.push(e.dm);
            match &e.next {
                Some(n) => {
                    b.next.extend(&n.s);
                    b.next_mask.push(n.mask.clone());
                    b.next_m.push(n.m);
                    b.done.push(false);
                }
                None => {
                    b.next.extend(std::iter::repeat_n(0.0, e.s.len()));
                    b.next_mask.push(vec![false; e.mask.len()]);
                    b.next_m.push(e.m);
                    b.done.push(true);
                }
            }
        }
        b
    }

    /// One-hot rows of the actions taken, `[n, k]`.
    pub fn one_hot(&self, k: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.n * k];
        for (i, a) in self.actions.iter().enumerate() {
            v[i * k + a] = 1.0;
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    items: Vec<Experience>,
    capacity: usize,
    /// Where the next push goes once full.
    head: usize,
    rng: SplitMix64,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, seed: u64) -> ReplayBuffer {
        ReplayBuffer { items: Vec::new(), capacity: capacity.max(1), head: 0, rng: SplitMix64::new(seed) }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds one, overwriting the oldest when full.
    pub fn push(&mut self, e: Experience) {
        if self.items.len() < self.capacity {
            self.items.push(e);
        } else {
            self.items[self.head] = e;
            self.head = (self.head + 1) % self.capacity;
        }
    }

    pub fn batch(&mut self, n: usize) -> Batch {
        Batch::of(&self.sample(n))
    }

    /// `n` experiences drawn uniformly with replacement.
    pub fn sample(&mut self, n: usize) -> Vec<&Experience> {
        if self.items.is_empty() {
            return Vec::new();
        }
        let len = self.items.len() as u64;
        let idx: Vec<usize> = (0..n).map(|_| (self.rng.next_u64() % len) as usize).collect();
        idx.into_iter().map(|i| &self.items[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(i: usize) -> Experience {
        Experience { s: vec![i as f32], mask: vec![true], m: [0.0; 4], g: [1.0; 4], action: 0, dm: [i as f64, 0.0, 0.0, 0.0], next: None }
    }

    #[test]
    fn keeps_the_newest_and_samples_reproducibly() {
        let mut b = ReplayBuffer::new(3, 7);
        assert!(b.sample(2).is_empty());
        for i in 0..5 {
            b.push(ex(i));
        }
        assert_eq!(b.len(), 3);
        let mut kept: Vec<f32> = b.items.iter().map(|e| e.s[0]).collect();
        kept.sort_by(f32::total_cmp);
        assert_eq!(kept, [2.0, 3.0, 4.0]);
        let draw = |seed| {
            let mut c = ReplayBuffer::new(3, seed);
            (0..5).for_each(|i| c.push(ex(i)));
            c.sample(20).iter().map(|e| e.s[0]).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        assert!(draw(1).iter().all(|x| (2.0..=4.0).contains(x)));
        assert_eq!(ex(3).reward(&[2.0, 0.0, 0.0, 0.0]), 6.0);
    }
}
