"""Our weightings against LibMTL 1.1.5's (PyTorch) on a tiny two-task model.

A shared linear layer + tanh and two linear heads, fixed random data, the same initial
weights in both frameworks, plain SGD. Each step of our real train step (on 2 devices) is
compared with LibMTL's weighting `backward` followed by `optimizer.step()`, as LibMTL's
Trainer runs them: the task weights, the parameters after every step and so the combined
gradients (SGD: the step's parameter change is -lr x gradient).

LibMTL is installed without its dependencies (`pip install --no-deps LibMTL==1.1.5`,
requirements-torch.lock): it declares torchvision, which does not import beside this
project's torch 2.13.0, and its package __init__ imports the architectures, trainer and
model zoo that use it. So the package __init__s are never run: the test registers empty
`LibMTL` and `LibMTL.weighting` packages pointing at the installed directories and imports
only abstract_weighting.py and the scheme files (torch + numpy only), then removes the stubs.

Conventions mapped (documented in the schemes' docstrings):
  * UW: LibMTL's loss is sum L / (2 exp(s)) + s / 2 with s(0) = -0.5 and s trained by the
    model's optimiser -> ours with scale=0.5, init_log_var=-0.5, optimizer="sgd", same lr.
  * GradNorm: LibMTL's weights are T softmax(logits) trained by the model's optimiser, its
    L_i(0) is the first epoch's mean loss and it updates from the second epoch, its norms
    are over all shared parameters -> ours with parametrization="softmax", sgd, same lr,
    initial_loss_steps = 1 step per epoch, layer = the whole shared layer. LibMTL gives
    the heads the gradient of the unweighted loss sum (each task's backward() accumulates
    into them with weight 1; only the shared gradients are re-weighted), the paper and
    ours the weighted one: the GradNorm comparison freezes the heads in both.
  * DWA: an epoch is one step here (interval=1); LibMTL's buffer holds each epoch's mean.
  * PCGrad: weights 1 (ours: weights=None); with two tasks the random order cannot matter.
"""

import importlib
import importlib.util
import os
import sys
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hyperface_jax import optim, sharding, steps
from hyperface_jax.weighting import learned, loss_based, pcgrad

torch = pytest.importorskip("torch")
if importlib.util.find_spec("LibMTL") is None:
  pytest.skip(
    "LibMTL is not installed (make test installs it: requirements-torch.lock)",
    allow_module_level=True,
  )

LR = 0.1
STEPS = 5
N, D_IN, D_REP = 16, 5, 4
TASKS = ("a", "b")


def _load_libmtl():
  """{name: LibMTL weighting class}, without running LibMTL's package __init__ (see above)."""
  root = importlib.util.find_spec("LibMTL").submodule_search_locations[0]
  saved = {k: v for k, v in sys.modules.items() if k == "LibMTL" or k.startswith("LibMTL.")}
  try:
    for name, path in (("LibMTL", root), ("LibMTL.weighting", os.path.join(root, "weighting"))):
      stub = types.ModuleType(name)
      stub.__path__ = [path]
      sys.modules[name] = stub
    return {
      name: getattr(importlib.import_module(f"LibMTL.weighting.{name}"), name)
      for name in ("UW", "GradNorm", "DWA", "PCGrad")
    }
  finally:
    for k in [k for k in sys.modules if k == "LibMTL" or k.startswith("LibMTL.")]:
      del sys.modules[k]
    sys.modules.update(saved)


LIBMTL = _load_libmtl()


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(N, D_IN)).astype(np.float32)
  y = rng.normal(size=(N, 1)).astype(np.float32)
  # Task b's target is mostly the opposite of a's: the shared gradients conflict.
  return x, {"a": y, "b": (-0.7 * y + 0.3 * rng.normal(size=(N, 1))).astype(np.float32)}


def _init_weights():
  rng = np.random.default_rng(1)
  w = lambda *s: (rng.normal(size=s) * 0.5).astype(np.float32)
  return {
    "shared": {"fc": {"kernel": w(D_IN, D_REP), "bias": w(D_REP)}},
    "heads": {f"fc_{t}1": {"kernel": w(D_REP, 1), "bias": w(1)} for t in TASKS},
  }


class TwoTask(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    class Shared(nn.Module):
      @nn.compact
      def __call__(self, x):
        return jnp.tanh(nn.Dense(D_REP, name="fc")(x))

    class Heads(nn.Module):
      @nn.compact
      def __call__(self, h):
        return {t: nn.Dense(1, name=f"fc_{t}1")(h) for t in TASKS}

    return Heads(name="heads")(Shared(name="shared")(x))


def _mse(outputs, batch):
  """(sum, count) per task, as the project's losses (losses.py)."""
  return {
    t: (
      jnp.sum((outputs[t] - batch[t]) ** 2 * batch["example_mask"][:, None]),
      jnp.sum(batch["example_mask"]),
    )
    for t in TASKS
  }


def _ours(weigher, freeze_heads=False):
  """Per-step weights, parameters and PCGrad coefficients of our train step on 2 devices."""
  mesh = sharding.make_mesh(jax.devices()[:2])
  c = ml_collections.ConfigDict()
  c.lr = LR
  c.optim = dict(name="sgd", momentum=0.0, weight_decay=0.0, grad_clip_norm=0.0)
  c.optim.freeze = ("heads/.*",) if freeze_heads else ()
  c.schedule = dict(name="constant", warmup_steps=0)
  optimizer = optim.make_optimizer(c, 100)
  params = jax.tree.map(jnp.asarray, _init_weights())
  state = steps.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    model_state={},
    opt_state=optimizer.init(params),
    weighting=weigher.init(),
    val_losses={t: jnp.zeros(()) for t in TASKS},
    val_count=jnp.zeros((), jnp.int32),
  )
  state = sharding.replicate(mesh, state)
  step = steps.make_train_step(
    mesh,
    model=TwoTask(),
    loss_fn=_mse,
    optimizer=optimizer,
    weighting=weigher,
    seed=0,
  )
  x, y = _data()
  batch = sharding.global_batch(mesh, {"image": x, "example_mask": np.ones(N, np.float32), **y})
  weights, snapshots, coefs = [], [sharding.to_host(state.params)], []
  for _ in range(STEPS):
    state, metrics = step(state, batch)
    metrics = sharding.to_host(metrics)
    weights.append([metrics[f"weight/{t}"] for t in TASKS])
    coefs.append([metrics.get(f"pcgrad/coef/{t}", np.nan) for t in TASKS])
    snapshots.append(sharding.to_host(state.params))
  return np.array(weights), snapshots, np.array(coefs)


def _libmtl(name, freeze_heads=False, **weight_args):
  """Per-step weights and parameters of LibMTL's weighting `name` (its Trainer's loop)."""

  class Model(LIBMTL[name]):
    def __init__(self):
      super().__init__()
      init = _init_weights()
      self.task_num, self.task_name, self.device, self.rep_grad = 2, list(TASKS), "cpu", False
      self.shared = torch.nn.Linear(D_IN, D_REP)
      self.heads = torch.nn.ModuleList([torch.nn.Linear(D_REP, 1) for _ in TASKS])
      with torch.no_grad():
        self.shared.weight.copy_(torch.from_numpy(init["shared"]["fc"]["kernel"].T))
        self.shared.bias.copy_(torch.from_numpy(init["shared"]["fc"]["bias"]))
        for head, t in zip(self.heads, TASKS, strict=True):
          head.weight.copy_(torch.from_numpy(init["heads"][f"fc_{t}1"]["kernel"].T))
          head.bias.copy_(torch.from_numpy(init["heads"][f"fc_{t}1"]["bias"]))
      self.init_param()

    def get_share_params(self):  # LibMTL's AbsArchitecture: the encoder's parameters
      return self.shared.parameters()

    def zero_grad_share_params(self):
      # LibMTL 1.1.5 was written for torch < 2, where zero_grad() zeroed the gradients;
      # torch 2's default set_to_none=True would leave None that its _reset_grad writes to.
      self.shared.zero_grad(set_to_none=False)

  model = Model()
  # LibMTL: one optimiser for every parameter, the weighting's included.
  trained = [p for n, p in model.named_parameters() if not (freeze_heads and n.startswith("heads"))]
  optimizer = torch.optim.SGD(trained, lr=LR)
  x, y = _data()
  x = torch.from_numpy(x)
  model.train_loss_buffer = np.zeros([2, STEPS])
  weights, snapshots = [], [_torch_params(model)]
  for epoch in range(STEPS):  # one step per epoch
    model.epoch = epoch
    rep = torch.tanh(model.shared(x))
    losses = torch.stack(
      [
        torch.nn.functional.mse_loss(h(rep), torch.from_numpy(y[t]))
        for h, t in zip(model.heads, TASKS, strict=True)
      ]
    )
    optimizer.zero_grad()
    weights.append(np.asarray(model.backward(losses, **weight_args), np.float64))
    optimizer.step()
    model.train_loss_buffer[:, epoch] = losses.detach().numpy()
    snapshots.append(_torch_params(model))
  return np.array(weights), snapshots, model


def _torch_params(model):
  p = {
    "shared": {
      "fc": {
        "kernel": model.shared.weight.detach().numpy().T.copy(),
        "bias": model.shared.bias.detach().numpy().copy(),
      }
    },
    "heads": {},
  }
  for head, t in zip(model.heads, TASKS, strict=True):
    p["heads"][f"fc_{t}1"] = {
      "kernel": head.weight.detach().numpy().T.copy(),
      "bias": head.bias.detach().numpy().copy(),
    }
  return p


def _compare(ours, theirs, heads=True):
  for step, (a, b) in enumerate(zip(ours, theirs, strict=True)):
    for part in ("shared", "heads") if heads else ("shared",):
      for x, y in zip(jax.tree.leaves(a[part]), jax.tree.leaves(b[part]), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=f"step {step} {part}")
  # The combined gradients: parameter changes of each step (SGD, lr) agree too.
  for step in range(1, len(ours)):
    for part in ("shared", "heads") if heads else ("shared",):
      da = [
        x - y
        for x, y in zip(
          jax.tree.leaves(ours[step][part]), jax.tree.leaves(ours[step - 1][part]), strict=True
        )
      ]
      db = [
        x - y
        for x, y in zip(
          jax.tree.leaves(theirs[step][part]), jax.tree.leaves(theirs[step - 1][part]), strict=True
        )
      ]
      for x, y in zip(da, db, strict=True):
        np.testing.assert_allclose(
          x / LR, y / LR, rtol=1e-4, atol=1e-5, err_msg=f"grad {step} {part}"
        )


def test_uncertainty_matches_libmtl_uw():
  w_ours, p_ours, coefs = _ours(
    learned.uncertainty(TASKS, optimizer="sgd", lr=LR, init_log_var=-0.5, scale=0.5)
  )
  w_lib, p_lib, model = _libmtl("UW")
  np.testing.assert_allclose(w_ours, w_lib, rtol=1e-5)
  assert np.max(np.abs(w_lib - w_lib[0])) > 1e-3  # the weights moved
  _compare(p_ours, p_lib)


def test_gradnorm_matches_libmtl_gradnorm():
  weigher = learned.gradnorm(
    TASKS,
    alpha=1.5,
    optimizer="sgd",
    lr=LR,
    layer="shared[/].*",  # the trunk layer named "shared" (regex)
    parametrization="softmax",
    initial_loss_steps=1,
  )
  # Heads frozen in both: LibMTL trains them on the unweighted loss sum (module docstring),
  # which would make the losses, hence the weights, drift apart after the first re-weighting.
  w_ours, p_ours, coefs = _ours(weigher, freeze_heads=True)
  w_lib, p_lib, _ = _libmtl("GradNorm", freeze_heads=True, alpha=1.5)
  np.testing.assert_allclose(w_ours, w_lib, rtol=1e-5)
  assert np.max(np.abs(w_lib - 1.0)) > 1e-3  # the weights moved
  _compare(p_ours, p_lib)


def test_dwa_matches_libmtl_dwa():
  w_ours, p_ours, coefs = _ours(loss_based.dwa(TASKS, temperature=2.0, interval=1))
  w_lib, p_lib, _ = _libmtl("DWA", T=2.0)
  np.testing.assert_allclose(w_ours, w_lib, rtol=1e-5)
  assert np.max(np.abs(w_lib - 1.0)) > 1e-3
  _compare(p_ours, p_lib)


def test_pcgrad_matches_libmtl_pcgrad():
  w_ours, p_ours, coefs = _ours(pcgrad.pcgrad(TASKS))
  w_lib, p_lib, _ = _libmtl("PCGrad")
  # LibMTL's PCGrad returns the effective coefficients of the task gradients in the
  # projected sum (1 minus the projections), ours logs them as pcgrad/coef/<task>; the
  # loss weights are 1 in both.
  assert np.max(np.abs(w_lib - 1.0)) > 1e-3  # the gradients did conflict
  np.testing.assert_allclose(coefs, w_lib, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(w_ours, 1.0)
  _compare(p_ours, p_lib)
