"""Prefetched training batches (data/prefetch.py): the inline batches, in order, from any
start step; a worker's error in the training thread; no worker thread left behind."""

import gc
import threading

import numpy as np
import pytest
from scene_fixtures import make_faces

from hyperface_jax import preemption
from hyperface_jax.data import pipeline, prefetch

ROWS = 8


@pytest.fixture(scope="module")
def batch_fn():
  rng = np.random.default_rng(0)
  store = pipeline.SceneStore.from_examples(
    [
      {
        "image": rng.integers(0, 256, (90, 120, 3), dtype=np.uint8),
        "image/filename": f"s{i}.png".encode(),
        "faces": make_faces([[20 + i, 15, 40, 40]], gender=[i % 2], seed=i),
      }
      for i in range(4)
    ]
  )

  def train_batch(step, rows):
    return pipeline.train_batch(
      store, seed=5, step=step, batch_size=rows, image_size=20, regions_per_scene=2
    )

  return train_batch


def _live():
  """The prefetch pool's threads still alive."""
  return [t for t in threading.enumerate() if t.name.startswith("prefetch") and t.is_alive()]


def _same(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("workers,depth,start", [(0, 1, 0), (1, 1, 0), (2, 3, 0), (3, 2, 6)])
def test_same_batches_as_inline_in_order(batch_fn, workers, depth, start):
  before = _live()
  stop = start + 7
  with prefetch.Prefetcher(batch_fn, ROWS, start, stop, workers=workers, prefetch=depth) as p:
    for step in range(start + 1, stop + 1):
      _same(p.get(step), batch_fn(step, ROWS))
  assert _live() == before


def test_resumed_run_sees_the_batches_of_an_uninterrupted_one(batch_fn):
  with prefetch.Prefetcher(batch_fn, ROWS, 0, 9, workers=2) as p:
    full = [p.get(s) for s in range(1, 10)]
  with prefetch.Prefetcher(batch_fn, ROWS, 4, 9, workers=2) as p:  # resumed at step 4
    for s in range(5, 10):
      _same(p.get(s), full[s - 1])
  with pytest.raises(ValueError, match="expected step 1"):
    prefetch.Prefetcher(batch_fn, ROWS, 0, 9, workers=1).get(2)


def test_worker_error_is_raised_in_the_training_thread(batch_fn):
  before = _live()

  def failing(step, rows):
    if step == 3:
      raise ValueError(f"scene 17 has no pixels (step {step})")
    return batch_fn(step, rows)

  p = prefetch.Prefetcher(failing, ROWS, 0, 10, workers=2, prefetch=4)
  p.get(1)
  p.get(2)
  with pytest.raises(ValueError, match=r"scene 17 has no pixels \(step 3\)"):
    p.get(3)
  assert _live() == before  # closed before the error reached us


def test_pool_closes_at_the_end_on_close_and_when_abandoned(batch_fn):
  before = _live()
  p = prefetch.Prefetcher(batch_fn, ROWS, 0, 3, workers=2)
  for s in (1, 2, 3):
    p.get(s)
  assert _live() == before  # the last batch closes the pool

  def training_loop():  # train.py after SIGTERM: raises with batches still being built
    batches = prefetch.Prefetcher(batch_fn, ROWS, 0, 100, workers=2, prefetch=4)
    batches.get(1)
    assert _live()
    raise preemption.Preempted(1, "ckpt")

  with pytest.raises(preemption.Preempted):
    training_loop()
  gc.collect()
  assert _live() == before

  p = prefetch.Prefetcher(batch_fn, ROWS, 0, 100, workers=2, prefetch=6)
  p.get(1)
  p.close()
  p.close()  # idempotent
  assert _live() == before
