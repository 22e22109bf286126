# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 1 · An HMF layer of your own
#
# *Graded by nbgrader: 9 points, all autograded. Some tests are visible below each answer; more (hidden)
# tests run when your notebook is graded, on other shapes and inputs. Fill in every cell that says
# `YOUR CODE HERE` (delete the `raise NotImplementedError()`), then run the notebook top to bottom
# (Kernel > Restart & Run All) before you hand it in.*
#
# Hybrid matrix factorization keeps the top `k` rows of a weight `W` (m x n, `nn.Linear`'s out x in layout)
# dense and factorizes the other `m - k` rows at rank `r`:
#
# $$\hat W = \begin{bmatrix} D \\ U V \end{bmatrix}, \qquad D: k \times n,\quad U: (m-k) \times r,\quad V: r \times n .$$
#
# You will write the layer that `hl.HMFLinear` is, from scratch: count its stored values, run its forward
# **without forming** $\hat W$, initialise it from a trained `nn.Linear`, and fine-tune it. Use `torch` only:
# the tests check that your code does not call the kit's own `hl.hmf_params` or `hl.hmf` (you may use them to
# check your answers in a scratch cell).

# %%
import torch
from torch import nn

import hmf_lab as hl
from hmf_lab.factor._validation import quick_mode

torch.set_num_threads(1)
torch.manual_seed(0)
QUICK = quick_mode()  # HMF_LAB_QUICK=1 (grading, CI) uses smaller sizes

# %% [markdown]
# ## 1. Stored values (2 points)
#
# Write `hmf_n_params(m, n, split, rank)`: how many values the three blocks $D$, $U$, $V$ store (the bias
# is not counted). Compression is then `m * n / hmf_n_params(...)`.

# %% nbgrader={"grade": false, "grade_id": "n_params", "locked": false, "schema_version": 3, "solution": true, "task": false}
def hmf_n_params(m, n, split, rank):
    """Stored values of an HMF weight: the k dense rows, U and V."""
    ### BEGIN SOLUTION
    return split * n + rank * (m - split) + rank * n
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_n_params", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import inspect

assert isinstance(hmf_n_params(8, 6, 2, 3), int), "return an int"
assert hmf_n_params(8, 6, 0, 0) == 0, "no dense rows and rank 0 store nothing"
assert hmf_n_params(8, 6, 8, 0) == 8 * 6, "every row dense stores all of W"
### BEGIN HIDDEN TESTS
assert "hmf_params" not in inspect.getsource(hmf_n_params), "count the blocks yourself"
for m_, n_, k_, r_ in [(8, 6, 2, 3), (64, 48, 8, 12), (48, 64, 0, 5), (1024, 256, 100, 7), (5, 9, 5, 2)]:
    assert hmf_n_params(m_, n_, k_, r_) == hl.hmf_params(m_, n_, k_, r_), (m_, n_, k_, r_)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The layer (4 points)
#
# Complete `MyHMFLinear`. Keep these names, the tests use them:
#
# - parameters `self.D` (k, n), `self.U` (m-k, r), `self.V` (r, n) and `self.bias` (m,) or `None`;
#   any random start will do (e.g. `torch.randn(...) / n ** 0.5`);
# - `forward(x)`: `x` of shape `(..., n)` gives `(..., m)`: `x @ W_hat.T + bias`, computed **without forming
#   `W_hat`**: one product with `D` and two thin ones with `V` then `U`;
# - `n_params()`: the stored values of the weight (as in part 1);
# - `to_dense()`: $\hat W$ (m, n), for checking;
# - `from_linear(linear, split, rank)`: the top `split` rows of `linear.weight` dense, the other rows their best
#   rank-`rank` approximation (truncated SVD: `torch.linalg.svd`), the bias copied.

# %% nbgrader={"grade": false, "grade_id": "layer", "locked": false, "schema_version": 3, "solution": true, "task": false}
class MyHMFLinear(nn.Module):
    """y = x W_hat^T + b with W_hat = [D ; U V]: the top `split` rows dense, the rest at rank `rank`."""

    def __init__(self, in_features, out_features, split, rank, bias=True):
        super().__init__()
        self.in_features, self.out_features, self.split, self.rank = in_features, out_features, split, rank
        ### BEGIN SOLUTION
        m, n, k, r = out_features, in_features, split, rank
        self.D = nn.Parameter(torch.randn(k, n) / n ** 0.5)      # (k, n)
        self.U = nn.Parameter(torch.randn(m - k, r) / max(r, 1) ** 0.5)  # (m-k, r)
        self.V = nn.Parameter(torch.randn(r, n) / n ** 0.5)      # (r, n)
        self.bias = nn.Parameter(torch.zeros(m)) if bias else None
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        top = x @ self.D.T  # (..., k)
        rest = (x @ self.V.T) @ self.U.T  # (..., r) then (..., m-k)
        y = torch.cat([top, rest], dim=-1)  # (..., m)
        return y if self.bias is None else y + self.bias
        ### END SOLUTION

    def n_params(self):
        ### BEGIN SOLUTION
        return self.D.numel() + self.U.numel() + self.V.numel()
        ### END SOLUTION

    def to_dense(self):
        ### BEGIN SOLUTION
        return torch.cat([self.D, self.U @ self.V], dim=0)
        ### END SOLUTION

    @classmethod
    def from_linear(cls, linear, split, rank):
        ### BEGIN SOLUTION
        W = linear.weight.detach()
        m, n = W.shape
        layer = cls(n, m, split, rank, bias=linear.bias is not None)
        P, S, Qh = torch.linalg.svd(W[split:], full_matrices=False)  # the rows below the split
        with torch.no_grad():
            layer.D.copy_(W[:split])
            layer.U.copy_(P[:, :rank] * S[:rank])
            layer.V.copy_(Qh[:rank])
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer
        ### END SOLUTION


# %% [markdown]
# Try it on a trained-like layer: the error of your layer against the dense one, and its compression.

# %%
lin = nn.Linear(96, 64) if QUICK else nn.Linear(384, 256)
mine = MyHMFLinear(lin.in_features, lin.out_features, split=8, rank=12)
x = torch.randn(4, lin.in_features)
print(f"output {tuple(mine(x).shape)}, stored values {mine.n_params()}, "
      f"compression {lin.weight.numel() / mine.n_params():.2f}x")

# %% nbgrader={"grade": true, "grade_id": "test_forward", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
layer = MyHMFLinear(16, 12, split=3, rank=4)
assert tuple(layer.D.shape) == (3, 16) and tuple(layer.U.shape) == (9, 4) and tuple(layer.V.shape) == (4, 16)
assert layer(torch.randn(5, 16)).shape == (5, 12)
### BEGIN HIDDEN TESTS
assert "to_dense" not in inspect.getsource(MyHMFLinear.forward), "forward must not form W_hat"
g = torch.Generator().manual_seed(1)
for (n_, m_, k_, r_, bias_) in [(16, 12, 3, 4, True), (20, 30, 0, 5, False), (7, 9, 9, 0, True), (33, 17, 5, 2, True)]:
    layer = MyHMFLinear(n_, m_, k_, r_, bias=bias_)
    with torch.no_grad():  # fresh values, so a forward that ignores a block cannot match by luck
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    assert (layer.bias is None) == (not bias_)
    W_hat = torch.cat([layer.D, layer.U @ layer.V], dim=0)
    for shape in [(n_,), (6, n_), (2, 3, n_)]:
        x_ = torch.randn(shape, generator=g)
        ref = x_ @ W_hat.T + (layer.bias if bias_ else 0)
        y_ = layer(x_)
        assert y_.shape == (*shape[:-1], m_), (shape, y_.shape)
        torch.testing.assert_close(y_, ref, rtol=1e-4, atol=1e-4)
    if k_:  # the dense rows matter: changing D changes exactly the first k outputs
        x_ = torch.randn(4, n_, generator=g)
        before = layer(x_).detach()
        with torch.no_grad():
            layer.D.add_(1.0)
        diff = (layer(x_).detach() - before).abs().sum(0)
        assert (diff[:k_] > 0).all() and (diff[k_:] == 0).all()
# gradients reach every block
layer = MyHMFLinear(10, 8, 2, 3)
layer(torch.randn(5, 10)).pow(2).sum().backward()
assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in (layer.D, layer.U, layer.V))
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_layer_params", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
assert isinstance(MyHMFLinear(16, 12, 3, 4).n_params(), int)
assert MyHMFLinear(16, 12, 12, 0).n_params() == 12 * 16, "every row dense: all of W"
### BEGIN HIDDEN TESTS
for (n_, m_, k_, r_) in [(20, 30, 0, 5), (7, 9, 9, 0), (33, 17, 5, 2), (128, 64, 10, 20)]:
    layer = MyHMFLinear(n_, m_, k_, r_)
    assert layer.n_params() == hl.hmf_params(m_, n_, k_, r_), (m_, n_, k_, r_)
    assert tuple(layer.to_dense().shape) == (m_, n_)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. From a trained layer (1 point)
#
# `from_linear` should give the best approximation with the top rows dense: the same $\hat W$ as the kit's
# `hl.hmf(W, split, rank, heuristic="top")`.

# %%
approx = MyHMFLinear.from_linear(lin, split=8, rank=12)
err = (lin.weight - approx.to_dense()).norm() / lin.weight.norm()
print(f"relative weight error {err:.3f} at {lin.weight.numel() / approx.n_params():.2f}x")

# %% nbgrader={"grade": true, "grade_id": "test_from_linear", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
approx = MyHMFLinear.from_linear(nn.Linear(24, 20), split=4, rank=3)
assert tuple(approx.D.shape) == (4, 24) and tuple(approx.U.shape) == (16, 3) and tuple(approx.V.shape) == (3, 24)
### BEGIN HIDDEN TESTS
src_ = inspect.getsource(MyHMFLinear.from_linear)
assert "hl.hmf" not in src_ and "HMFLinear" not in src_.replace("MyHMFLinear", ""), "use torch.linalg.svd"
torch.manual_seed(3)
for (n_, m_, k_, r_) in [(24, 20, 4, 3), (40, 64, 0, 6), (30, 18, 18, 0), (50, 36, 7, 9)]:
    lin_ = nn.Linear(n_, m_)
    a_ = MyHMFLinear.from_linear(lin_, split=k_, rank=r_)
    ref_ = hl.hmf(lin_.weight.detach(), split=k_, rank=r_, heuristic="top").to_dense()
    torch.testing.assert_close(a_.to_dense().detach(), ref_, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a_.bias.detach(), lin_.bias.detach())
    x_ = torch.randn(3, n_)
    torch.testing.assert_close(a_(x_).detach(), x_ @ ref_.T + lin_.bias.detach(), rtol=1e-4, atol=1e-4)
assert MyHMFLinear.from_linear(nn.Linear(6, 5, bias=False), 1, 2).bias is None
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Fine-tuning (2 points)
#
# The SVD start minimises the **weight** error. What a layer is judged on is its **outputs** on the inputs it
# sees, and real inputs are far from uniform. Write `fine_tune(layer, X, Y, steps, lr)`: `steps` steps of
# `torch.optim.Adam` (learning rate `lr`) on the mean squared error between `layer(X)` and the targets `Y`,
# training `layer` in place; return the list of the `steps` loss values (floats), one per step, each taken
# before that step's update.

# %% nbgrader={"grade": false, "grade_id": "fine_tune", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fine_tune(layer, X, Y, steps=100, lr=1e-2):
    """Train `layer` in place to map X (N, n) to Y (N, m); return the loss before each step."""
    ### BEGIN SOLUTION
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(X), Y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
    ### END SOLUTION


# %%
teacher = nn.Linear(lin.in_features, lin.out_features)
X = hl.synthetic.concentrated_inputs(512, lin.in_features, directions=6, seed=0)  # inputs in a few directions
Y = teacher(X).detach()
student = MyHMFLinear.from_linear(teacher, split=4, rank=6)
losses = fine_tune(student, X, Y, steps=60 if QUICK else 200, lr=1e-2)
print(f"output loss: {losses[0]:.4f} (SVD start) -> {losses[-1]:.4f} after {len(losses)} steps")

# %% nbgrader={"grade": true, "grade_id": "test_fine_tune", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert len(losses) == (60 if QUICK else 200) and all(isinstance(v, float) for v in losses)
assert losses[-1] < losses[0]
### BEGIN HIDDEN TESTS
torch.manual_seed(7)
t_ = nn.Linear(40, 30)
X_ = hl.synthetic.concentrated_inputs(256, 40, directions=4, seed=3)
Y_ = t_(X_).detach()
s_ = MyHMFLinear(40, 30, split=2, rank=3)  # a random start: every block, the dense rows too, must learn
start_ = torch.nn.functional.mse_loss(s_(X_), Y_).item()
D0 = s_.D.detach().clone()
l_ = fine_tune(s_, X_, Y_, steps=40, lr=1e-2)
assert len(l_) == 40 and abs(l_[0] - start_) < 1e-5 * max(1.0, start_), "losses[0]: the loss before the first step"
end_ = torch.nn.functional.mse_loss(s_(X_), Y_).item()
assert end_ < 0.5 * start_, f"fine-tuning should at least halve the output loss here: {start_:.4g} -> {end_:.4g}"
assert not torch.equal(D0, s_.D.detach()), "train the dense rows too"
### END HIDDEN TESTS
