"""Gender study on rendered face crops: single cues vs linear model vs small CNN.

  PYTHONPATH=. python bench/gender_study.py [--train 2400 --test 800 --size 48 --epochs 8]

Checks the issue-2 design of the gender cues (render_params): no single sampled cue
(optimal threshold) should beat ~80 %, all cues together (logistic regression on the sampled
values) should reach ~98 %, a logistic regression on raw pixels should do markedly worse
than a small CNN. Prints a markdown table.
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hyperface_jax.data import render
from hyperface_jax.data import render_params as rp


def best_threshold_accuracy(values, labels):
  """Best accuracy of `value > t` or `value < t` over all thresholds t."""
  order = np.argsort(values)
  y = labels[order]
  n = len(y)
  pos_left = np.concatenate([[0], np.cumsum(y)])  # females at or below the cut
  neg_left = np.arange(n + 1) - pos_left
  acc_a = (neg_left + (y.sum() - pos_left)) / n  # below cut -> male
  return float(max(acc_a.max(), (1 - acc_a).max()))


class SmallCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    for ch in (16, 32, 64):
      x = nn.relu(nn.Conv(ch, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
    x = nn.relu(nn.Dense(64)(x.reshape(x.shape[0], -1)))
    return nn.Dense(2)(x)


def train(model_fn, params, xtr, ytr, xte, yte, epochs, lr, batch=64, wd=0.0):
  opt = optax.adamw(lr, weight_decay=wd)
  state = opt.init(params)

  @jax.jit
  def step(params, state, x, y):
    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(model_fn(p, x), y).mean()

    loss, g = jax.value_and_grad(loss_fn)(params)
    upd, state = opt.update(g, state, params)
    return optax.apply_updates(params, upd), state, loss

  rng = np.random.default_rng(0)
  for _ in range(epochs):
    perm = rng.permutation(len(xtr))
    for i in range(0, len(xtr) - batch + 1, batch):
      idx = perm[i : i + batch]
      params, state, _ = step(params, state, xtr[idx], ytr[idx])
  acc = lambda x, y: float((np.argmax(np.asarray(jax.jit(model_fn)(params, x)), -1) == y).mean())
  return acc(xtr, ytr), acc(xte, yte)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--train", type=int, default=2400)
  parser.add_argument("--test", type=int, default=800)
  parser.add_argument("--size", type=int, default=48)
  parser.add_argument("--epochs", type=int, default=8)
  args = parser.parse_args()
  t0 = time.time()
  cfg = render.CropConfig(image_size=args.size)
  crops = [
    render.render_face_crop(np.random.default_rng([99, i]), cfg)
    for i in range(args.train + args.test)
  ]
  x = np.stack([c["image"] for c in crops]).astype(np.float32) / 255.0 - 0.5
  y = np.array([c["gender"] for c in crops], np.int32)
  cues = np.stack([c["cues"] for c in crops])
  t_render = time.time() - t0
  rows = [
    (f"cue: {name} (best threshold)", best_threshold_accuracy(cues[:, k], y), None)
    for k, name in enumerate(rp.CUE_NAMES)
  ]
  xtr, ytr, xte, yte = x[: args.train], y[: args.train], x[args.train :], y[args.train :]
  # Upper reference: logistic regression on all sampled cue values (standardised).
  z = (cues - cues[: args.train].mean(0)) / (cues[: args.train].std(0) + 1e-6)
  lin_c = {"w": jnp.zeros((z.shape[1], 2)), "b": jnp.zeros(2)}
  tr, te = train(
    lambda p, zb: zb @ p["w"] + p["b"],
    lin_c,
    z[: args.train],
    ytr,
    z[args.train :],
    yte,
    epochs=30,
    lr=1e-2,
  )
  rows.append(("logistic regression, all sampled cues", te, tr))
  # Linear model: logistic regression on raw pixels (L2 via AdamW weight decay).
  dim = xtr[0].size
  lin = {"w": jnp.zeros((dim, 2)), "b": jnp.zeros(2)}
  lin_fn = lambda p, xb: xb.reshape(xb.shape[0], -1) @ p["w"] + p["b"]
  tr, te = train(lin_fn, lin, xtr, ytr, xte, yte, epochs=30, lr=1e-3, wd=1e-2)
  rows.append(("logistic regression, raw pixels", te, tr))
  t1 = time.time()
  cnn = SmallCNN()
  params = cnn.init(jax.random.PRNGKey(0), xtr[:1])
  tr, te = train(cnn.apply, params, xtr, ytr, xte, yte, epochs=args.epochs, lr=2e-3)
  rows.append((f"small CNN (3 conv, {args.epochs} epochs, {time.time() - t1:.0f} s)", te, tr))
  print(
    f"{args.train} train / {args.test} test crops of {args.size}px "
    f"(rendered in {t_render:.0f} s); cue accuracies over all crops\n"
  )
  print("| predictor | test accuracy | train accuracy |\n|---|---|---|")
  for name, te, tr in rows:
    print(f"| {name} | {te:.3f} | {'' if tr is None else f'{tr:.3f}'} |")
  print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
  main()
