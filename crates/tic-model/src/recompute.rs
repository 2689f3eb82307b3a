//! Gradient (activation) checkpointing: a forward pass cut into segments that keeps only each
//! segment's input, and a backward pass that re-runs one segment at a time and backpropagates
//! through it.
//!
//! Candle keeps every intermediate tensor of a graph alive until `backward`; for a transformer
//! that is every block's attention scores, MLP hidden states and normalised inputs. Here each
//! residual block is a segment ([`crate::model::Clip::forward_recompute`]): the forward pass
//! keeps `[B, L, D]` per block, and the backward pass rebuilds one block's graph at a time from
//! its saved input, backpropagates the incoming gradient `g` through it (the surrogate
//! `Σ out·g`, whose gradient is exactly the chain rule's), and hands back the block's parameter
//! gradients and the gradient of its input for the segment before. This is PyTorch's
//! `torch.utils.checkpoint` as OpenCLIP's `set_grad_checkpointing` uses it per resblock: one
//! extra forward pass per step (less the last block's, whose record is kept: the backward pass
//! starts there), the same operations, the same numbers.
//!
//! Segments come in two kinds ([`Segment`]): closures over Candle ops, differentiated through
//! a local autograd graph as above, and segments with their own backward pass
//! ([`OwnBackward`]: a residual block on the CPU, [`tic_kernels::fused`]) that return what
//! they saved and differentiate themselves without any graph.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// What a segment with its own backward pass keeps from its forward pass for its backward.
pub type Saved = Box<dyn std::any::Any>;

/// A segment that differentiates itself instead of through Candle's autograd graph (e.g. a
/// residual block on the CPU, [`tic_kernels::fused`]).
pub trait OwnBackward {
    /// The segment's output for `x` (no graph) and what its backward pass needs.
    fn forward_saving(&self, x: &Tensor) -> Result<(Tensor, Saved)>;

    /// The gradient of the input `x` and a store with the gradients of the segment's
    /// variables, given what [`Self::forward_saving`] saved for `x` and the gradient of the
    /// output.
    fn backward(&self, x: &Tensor, saved: Saved, grad: &Tensor) -> Result<(Tensor, GradStore)>;
}

/// A segment's forward pass as Candle ops: input → output.
pub type GraphFn<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;

/// One segment of a forward pass: input → output.
pub enum Segment<'a> {
    /// Differentiated through Candle's autograd graph.
    Graph(GraphFn<'a>),
    /// Differentiated by its own backward pass.
    Own(Box<dyn OwnBackward + 'a>),
}

impl<'a> Segment<'a> {
    /// A segment differentiated through Candle's autograd graph.
    pub fn graph(f: impl Fn(&Tensor) -> Result<Tensor> + 'a) -> Self {
        Self::Graph(Box::new(f))
    }
}

/// What the forward pass kept of one segment for the backward pass.
enum Kept {
    /// The variable the segment's input was, if any, and its output with its graph.
    Graph(Option<Var>, Tensor),
    /// What an [`OwnBackward`] segment saved.
    Own(Saved),
}

/// How a segmented forward pass keeps what its backward pass needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Gradient checkpointing: only each segment's input; the backward pass re-runs the segment.
    Inputs,
    /// Each segment's graph (its activations), freed segment by segment as the backward pass
    /// goes: no recomputation, and no more activations alive at any point of the backward pass
    /// than the segments not yet differentiated (Candle's one-graph backward keeps all of them
    /// until it ends).
    Graphs,
}

/// A segmented forward pass: the segments, the input each one was given and, with
/// [`Keep::Graphs`], each segment's output with its graph.
pub struct Recompute<'a> {
    segments: Vec<Segment<'a>>,
    inputs: Vec<Tensor>,
    /// Per segment (with [`Keep::Graphs`]): what its backward pass needs besides its input.
    kept: Vec<Option<Kept>>,
}

impl<'a> Recompute<'a> {
    /// Runs `segments` in order from `x`, keeping only their inputs (detached, so every
    /// segment's graph is freed as soon as it has run). Returns the detached output and the
    /// record for [`Recompute::backward`]. `x` itself gets no gradient (pixels, token ids).
    pub fn forward(x: &Tensor, segments: Vec<Segment<'a>>) -> Result<(Tensor, Self)> {
        Self::forward_keeping(x, segments, Keep::Inputs)
    }

    /// Runs `segments` in order from `x`, keeping what `keep` says. Returns the detached output
    /// and the record for [`Recompute::backward`]. `x` itself gets no gradient.
    pub fn forward_keeping(
        x: &Tensor,
        segments: Vec<Segment<'a>>,
        keep: Keep,
    ) -> Result<(Tensor, Self)> {
        let n = segments.len();
        // With checkpointing, the last segment with its own backward pass keeps what it saved:
        // the backward pass reaches it first, so re-running it would buy no memory.
        let last_own = segments.iter().rposition(|s| matches!(s, Segment::Own(_)));
        let mut inputs = Vec::with_capacity(n);
        let mut kept = Vec::with_capacity(n);
        let mut cur = x.detach();
        for (i, seg) in segments.iter().enumerate() {
            let (out, k) = match (seg, keep) {
                (Segment::Own(s), Keep::Inputs) => {
                    let (out, saved) = s.forward_saving(&cur)?;
                    (out, (last_own == Some(i)).then(|| Kept::Own(saved)))
                }
                (Segment::Own(s), Keep::Graphs) => {
                    let (out, saved) = s.forward_saving(&cur)?;
                    (out, Some(Kept::Own(saved)))
                }
                (Segment::Graph(f), Keep::Inputs) => (f(&cur)?.detach(), None),
                (Segment::Graph(f), Keep::Graphs) => {
                    let var = if i == 0 {
                        None
                    } else {
                        Some(Var::from_tensor(&cur)?)
                    };
                    let out = f(var.as_ref().map_or(&cur, |v| v.as_tensor()))?;
                    (out.detach(), Some(Kept::Graph(var, out)))
                }
            };
            inputs.push(cur);
            kept.push(k);
            cur = out;
        }
        Ok((
            cur,
            Self {
                segments,
                inputs,
                kept,
            },
        ))
    }

    /// Backpropagates `grad` (the gradient of the loss with respect to the output of
    /// [`Recompute::forward`]) through the segments, last to first, each re-run from its saved
    /// input, and hands each segment's gradient store to `each` (it holds the gradients of the
    /// variables that segment uses), last segment first, before the next segment runs.
    ///
    /// Gradients of variables come out of Candle's backward pass still recording how they were
    /// computed, i.e. holding the segment's activations; `each` should keep only detached
    /// copies ([`Tensor::detach`]), as [`Recompute::backward`] does with the gradient it passes
    /// on, so that no more than one segment's activations are alive at a time.
    pub fn backward(
        self,
        grad: &Tensor,
        mut each: impl FnMut(GradStore) -> Result<()>,
    ) -> Result<()> {
        let mut grad = grad.detach();
        let Self {
            segments,
            inputs,
            mut kept,
        } = self;
        for (i, (seg, x)) in segments.iter().zip(&inputs).enumerate().rev() {
            let f = match seg {
                Segment::Own(s) => {
                    let saved = match kept[i].take() {
                        Some(Kept::Own(saved)) => saved,
                        _ => s.forward_saving(x)?.1,
                    };
                    let (dx, store) = s.backward(x, saved, &grad)?;
                    grad = dx;
                    each(store)?;
                    continue;
                }
                Segment::Graph(f) => f,
            };
            let (out, var) = match kept[i].take() {
                Some(Kept::Graph(var, out)) => (out, var),
                _ if i == 0 => (f(x)?, None),
                _ => {
                    let v = Var::from_tensor(x)?;
                    (f(v.as_tensor())?, Some(v))
                }
            };
            let store = (out * &grad)?.sum_all()?.backward()?;
            if let Some(v) = var {
                grad = match store.get(v.as_tensor()) {
                    Some(g) => g.detach(),
                    None => v.as_tensor().zeros_like()?,
                };
            }
            each(store)?;
        }
        Ok(())
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// True when there is no segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    #[test]
    fn segmented_backward_equals_one_graph() -> Result<()> {
        let dev = Device::Cpu;
        let w1 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 8), &dev)?)?;
        let w2 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 4), &dev)?)?;
        let x = Tensor::randn(0f32, 1.0, (5, 8), &dev)?;
        let f1 = |x: &Tensor| -> Result<Tensor> { (x + x.matmul(w1.as_tensor())?.tanh()?)?.exp() };
        let f2 = |x: &Tensor| -> Result<Tensor> { x.matmul(w2.as_tensor())?.sin() };
        let loss = |y: &Tensor| -> Result<Tensor> { y.sqr()?.sum(D::Minus1)?.mean_all() };
        // One graph.
        let y = f2(&f1(&x)?)?;
        let l = loss(&y)?;
        let g = l.backward()?;
        // Segments, with the loss gradient of the output.
        let (y2, rec) = Recompute::forward(&x, vec![Segment::graph(f1), Segment::graph(f2)])?;
        assert_eq!(y2.to_vec2::<f32>()?, y.to_vec2::<f32>()?);
        let yv = Var::from_tensor(&y2)?;
        let gy = loss(yv.as_tensor())?.backward()?;
        let mut stores = Vec::new();
        rec.backward(gy.get(yv.as_tensor()).unwrap(), |s| {
            stores.push(s);
            Ok(())
        })?;
        assert_eq!(stores.len(), 2);
        let got1 = stores[1].get(w1.as_tensor()).unwrap().to_vec2::<f32>()?;
        let got2 = stores[0].get(w2.as_tensor()).unwrap().to_vec2::<f32>()?;
        assert_eq!(got1, g.get(w1.as_tensor()).unwrap().to_vec2::<f32>()?);
        assert_eq!(got2, g.get(w2.as_tensor()).unwrap().to_vec2::<f32>()?);
        Ok(())
    }
}
