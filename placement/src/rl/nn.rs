//! The networks the deep agents share, on burn's pure-Rust `flex` CPU
//! backend: a one-hidden-layer MLP (DQN, A2C's actor and critic) and the
//! dueling predictor of DQNVMP, with Adam, and their weights as plain
//! `f32` vectors for the model file.
//!
//! Weights are drawn from the crate's seeded splitmix64, not burn's
//! generator: flex keeps one global seed for the process, which tests
//! running in parallel would share, so a model's initial weights would
//! depend on which other test ran first.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::store::{self, Array};
use crate::error::Result;
use crate::rng::SplitMix64;

/// The device training runs on: flex with autodiff.
pub fn train_device() -> Device {
    Device::flex().autodiff()
}

/// A dense layer with burn's default (Kaiming-uniform) bounds, U(−k, k),
/// k = 1/√fan_in, drawn from `rng`.
pub fn linear(d_in: usize, d_out: usize, rng: &mut SplitMix64, device: &Device) -> Linear {
    let k = (1.0 / d_in as f64).sqrt();
    let w: Vec<f32> = (0..d_in * d_out).map(|_| rng.range(-k, k) as f32).collect();
    let b: Vec<f32> = (0..d_out).map(|_| rng.range(-k, k) as f32).collect();
    linear_from(d_in, d_out, w, b, device)
}

pub fn linear_from(d_in: usize, d_out: usize, w: Vec<f32>, b: Vec<f32>, device: &Device) -> Linear {
    Linear { weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device)), bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), device))) }
}

/// A layer's weight and bias as vectors (row-major `[in, out]`).
pub fn linear_values(l: &Linear) -> (Vec<f32>, Vec<f32>) {
    let w = l.weight.val().try_into_vec_as::<f32>().expect("f32 weights");
    let b = l.bias.as_ref().map(|b| b.val().try_into_vec_as::<f32>().expect("f32 bias")).unwrap_or_default();
    (w, b)
}

pub fn dims(l: &Linear) -> (usize, usize) {
    let [i, o] = l.weight.val().dims();
    (i, o)
}

/// A layer as the model file's `NAME.weight` `[in, out]` and `NAME.bias`.
pub fn linear_arrays(name: &str, l: &Linear) -> Vec<Array> {
    let ((i, o), (w, b)) = (dims(l), linear_values(l));
    let wide = |v: Vec<f32>| v.into_iter().map(f64::from).collect();
    vec![Array::new(format!("{name}.weight"), vec![i, o], wide(w)), Array::new(format!("{name}.bias"), vec![o], wide(b))]
}

/// The layer `name` from a model's arrays, refusing another shape.
pub fn linear_load(arrays: &[Array], name: &str, d_in: usize, d_out: usize, device: &Device) -> Result<Linear> {
    let w = store::find(arrays, &format!("{name}.weight"), &[d_in, d_out])?;
    let b = store::find(arrays, &format!("{name}.bias"), &[d_out])?;
    let narrow = |a: &Array| a.data.iter().map(|x| *x as f32).collect();
    Ok(linear_from(d_in, d_out, narrow(w), narrow(b), device))
}

/// input → hidden (ReLU) → output.
#[derive(Module, Debug)]
pub struct Mlp {
    pub hidden: Linear,
    pub out: Linear,
}

impl Mlp {
    pub fn new(d_in: usize, hidden: usize, d_out: usize, rng: &mut SplitMix64, device: &Device) -> Mlp {
        Mlp { hidden: linear(d_in, hidden, rng, device), out: linear(hidden, d_out, rng, device) }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(relu(self.hidden.forward(x)))
    }

    pub fn arrays(&self, name: &str) -> Vec<Array> {
        [linear_arrays(&format!("{name}.hidden"), &self.hidden), linear_arrays(&format!("{name}.out"), &self.out)].concat()
    }

    /// The network `name` of shape `d_in → hidden → d_out` from a model's arrays.
    pub fn load(arrays: &[Array], name: &str, (d_in, hidden, d_out): (usize, usize, usize), device: &Device) -> Result<Mlp> {
        Ok(Mlp { hidden: linear_load(arrays, &format!("{name}.hidden"), d_in, hidden, device)?, out: linear_load(arrays, &format!("{name}.out"), hidden, d_out, device)? })
    }
}

/// DQNVMP's predictor: a shared hidden layer, then an expectation stream
/// E (one value per measurement) and an advantage stream A (per action and
/// measurement); F[a] = E + A[a] − mean over actions of A.
#[derive(Module, Debug)]
pub struct Dueling {
    pub trunk: Linear,
    pub expect: Linear,
    pub advantage: Linear,
}

impl Dueling {
    pub fn new(d_in: usize, hidden: usize, actions: usize, measures: usize, rng: &mut SplitMix64, device: &Device) -> Dueling {
        Dueling { trunk: linear(d_in, hidden, rng, device), expect: linear(hidden, measures, rng, device), advantage: linear(hidden, actions * measures, rng, device) }
    }

    /// `[batch, actions, measures]` predicted measurement changes.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<3> {
        let h = relu(self.trunk.forward(x));
        let [batch, _] = h.dims();
        let m = dims(&self.expect).1;
        let k = dims(&self.advantage).1 / m;
        let e = self.expect.forward(h.clone()).reshape([batch, 1, m]);
        let a = self.advantage.forward(h).reshape([batch, k, m]);
        let mean = a.clone().mean_dim(1);
        e + a - mean
    }

    pub fn arrays(&self) -> Vec<Array> {
        [linear_arrays("trunk", &self.trunk), linear_arrays("expect", &self.expect), linear_arrays("advantage", &self.advantage)].concat()
    }

    pub fn load(arrays: &[Array], (d_in, hidden, actions, measures): (usize, usize, usize, usize), device: &Device) -> Result<Dueling> {
        Ok(Dueling { trunk: linear_load(arrays, "trunk", d_in, hidden, device)?, expect: linear_load(arrays, "expect", hidden, measures, device)?, advantage: linear_load(arrays, "advantage", hidden, actions * measures, device)? })
    }
}

/// Rows of `width` floats as a `[rows, width]` tensor.
pub fn batch(rows: &[f32], width: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len() / width, width]), device)
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("f32 tensor")
}

/// Adam with the learning rate it steps at.
pub struct Adam {
    pub optim: ModuleOptimizer,
    pub lr: f64,
}

impl Adam {
    pub fn new(lr: f64) -> Adam {
        Adam { optim: AdamConfig::new().init(), lr }
    }

    /// One step down the gradient of the scalar `loss` for `model`.
    pub fn step<M: Module>(&mut self, model: M, loss: Tensor<1>) -> M {
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        self.optim.step(self.lr, model, grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mlp_learns_a_linear_map_and_the_dueling_head_centres_advantages() {
        let dev = train_device();
        let mut rng = SplitMix64::new(3);
        let mut net = Mlp::new(4, 32, 2, &mut rng, &dev);
        let mut adam = Adam::new(1e-2);
        let xs: Vec<f32> = (0..64 * 4).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let ys: Vec<f32> = xs.chunks(4).flat_map(|x| [x[0] - 2.0 * x[1], x[2] + x[3]]).collect();
        let (x, y) = (batch(&xs, 4, &dev), batch(&ys, 2, &dev));
        let loss = |n: &Mlp| (n.forward(x.clone()) - y.clone()).square().mean();
        let first = values(loss(&net))[0];
        for _ in 0..200 {
            let l = loss(&net);
            net = adam.step(net, l);
        }
        let last = values(loss(&net))[0];
        assert!(last < first / 20.0, "{first} → {last}");
        let d = Dueling::new(4, 16, 3, 2, &mut rng, &dev);
        let f = values(d.forward(x.clone()));
        assert_eq!(f.len(), 64 * 3 * 2);
        let same = Mlp::new(4, 32, 2, &mut SplitMix64::new(3), &dev);
        let again = Mlp::new(4, 32, 2, &mut SplitMix64::new(3), &dev);
        assert_eq!(linear_values(&same.hidden), linear_values(&again.hidden), "weights come from the seed alone");
    }

    /// Times one Adam step of the paper's shape (64 → 400 → 8, batch 150)
    /// and one forward pass of a single row. `cargo test --release -- --ignored nn_speed --nocapture`.
    #[test]
    #[ignore]
    fn nn_speed() {
        let dev = train_device();
        let mut rng = SplitMix64::new(1);
        let mut net = Mlp::new(64, 400, 8, &mut rng, &dev);
        let mut adam = Adam::new(1e-3);
        let xs: Vec<f32> = (0..150 * 64).map(|_| rng.unit() as f32).collect();
        let ys: Vec<f32> = (0..150 * 8).map(|_| rng.unit() as f32).collect();
        let t = std::time::Instant::now();
        for _ in 0..100 {
            let l = (net.forward(batch(&xs, 64, &dev)) - batch(&ys, 8, &dev)).square().mean();
            net = adam.step(net, l);
        }
        eprintln!("train step: {:.3} ms", t.elapsed().as_secs_f64() * 10.0);
        let inf = net.valid();
        let plain = Device::flex();
        let t = std::time::Instant::now();
        for _ in 0..1000 {
            let _ = values(inf.forward(batch(&xs[..64], 64, &plain)));
        }
        eprintln!("forward, one row: {:.1} µs", t.elapsed().as_secs_f64() * 1000.0);
    }
}
