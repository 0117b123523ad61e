"""AFLW and 300-W landmark protocols on hand-worked faces."""

import numpy as np
import pytest

from hyperface_jax import registry
from hyperface_jax.evaluation import protocols_landmarks as pl


def _face(offset, n=21):
  true = np.arange(n * 2, dtype=float).reshape(n, 2)
  return true + np.asarray(offset, float), true


def test_aflw_nme_per_yaw_bin_and_pose_mae():
  ev = registry.EVALUATORS.get("aflw_landmarks")()
  p1, t1 = _face([3, 4])  # error 5 px everywhere, box 50 -> 0.1
  p2, t2 = _face([6, 8])  # error 10 px, box 40x40 -> 0.25
  p3, t3 = _face([0, 1])  # error 1 on visible points, box 10 x 40 -> size 20 -> 0.05
  vis = np.ones((3, 21))
  vis[2, 5:] = 0
  p3[5:] += 100.0  # invisible points must not count
  pose = np.radians([[0, 0, 10], [0, 0, -45], [0, 0, 95]])  # bins 0-30, 30-60, last
  pred_pose = np.radians([[2, -4, 16], [1, 0, -45], [0, 3, 95]])
  ev.update(
    {
      "landmarks": np.stack([t1, t2, t3]),
      "visibility": vis,
      "box": np.array([[0, 0, 50, 50], [5, 5, 40, 40], [0, 0, 10, 40]], float),
      "pose": pose,
    },
    {"landmarks": np.stack([p1, p2, p3]), "pose": pred_pose},
  )
  r = ev.result()
  assert r["landmarks/nme"] == pytest.approx((0.1 + 0.25 + 0.05) / 3)
  assert r["landmarks/nme_yaw_0_30"] == pytest.approx(0.1)
  assert r["landmarks/nme_yaw_30_60"] == pytest.approx(0.25)
  assert r["landmarks/nme_yaw_60_90"] == pytest.approx(0.05)  # |yaw| 95 joins the last bin
  assert r["landmarks/nme_yaw_mean"] == pytest.approx((0.1 + 0.25 + 0.05) / 3)
  assert r["pose/mae_roll_deg"] == pytest.approx(1.0)
  assert r["pose/mae_pitch_deg"] == pytest.approx(7 / 3)
  assert r["pose/mae_yaw_deg"] == pytest.approx(2.0)
  assert "sqrt(w*h)" in ev.protocol()["landmarks/nme"]


def test_aflw19_drops_the_ears():
  ev = pl.AflwLandmarkEvaluator(scheme="aflw19")
  pred, true = _face([0, 0])
  pred[12] += [19 * 2.0, 0]  # LeftEar error 38 px: not in AFLW-19
  pred[0] += [0, 19.0]  # one counted point with error 19 -> mean 1 px over 19
  batch = {"landmarks": true[None], "visibility": np.ones((1, 21)), "box": [[0, 0, 10, 10]]}
  ev.update(batch, {"landmarks": pred[None]})
  assert ev.result()["landmarks/nme"] == pytest.approx(0.1)
  full = pl.AflwLandmarkEvaluator()
  full.update(batch, {"landmarks": pred[None]})
  assert full.result()["landmarks/nme"] == pytest.approx((38 + 19) / 21 / 10)


def test_w300_normalizers_and_subsets():
  true = np.zeros((68, 2))
  true[36:42] = [[0, 0], [1, 1], [2, 1], [3, 0], [2, -1], [1, -1]]  # centre (1.5, 0)
  true[42:48] = true[36:42] + [40, 0]  # centre (41.5, 0)
  # inter-pupil 40; outer corners 36 = (0, 0) and 45 = (43, 0): inter-ocular 43
  assert pl.w300_normalizer(true[None], "inter_pupil")[0] == pytest.approx(40)
  assert pl.w300_normalizer(true[None], "inter_ocular")[0] == pytest.approx(43)
  ev = registry.EVALUATORS.get("w300_landmarks")()

  def update(offset, subset):
    ev.update({"landmarks68": true[None], "subset": [subset]}, {"landmarks68": true[None] + offset})

  update([0, 2], "common")  # 2 px
  update([0, 4], "challenging")  # 4 px
  update([0, 6], "challenging")  # 6 px
  r = ev.result()
  assert r["landmarks/nme_inter_pupil/common"] == pytest.approx(2 / 40)
  assert r["landmarks/nme_inter_ocular/challenging"] == pytest.approx(5 / 43)
  assert r["landmarks/nme_inter_pupil/full"] == pytest.approx(4 / 40)  # per-face pooling
  assert r["count/faces/full"] == 3
  assert "36 and 45" in ev.protocol()["landmarks/nme_inter_ocular"]
  with pytest.raises(ValueError, match="inter_eye"):
    pl.W300LandmarkEvaluator(normalizers=("inter_eye",))


def test_face_batches_masks_subsets_from_paths_and_ced_plots(tmp_path):
  """Face-runner batches: padding and invalid rows skipped, 300-W subset read from the
  image path, CED plots written."""
  true = np.zeros((68, 2))
  true[36:42] = [[0, 0], [1, 1], [2, 1], [3, 0], [2, -1], [1, -1]]
  true[42:48] = true[36:42] + [40, 0]  # inter-pupil 40
  pts = np.stack([true] * 4)
  batch = {
    "landmarks68": pts,
    "valid/landmarks68": np.array([True, True, False, True]),
    "example_mask": np.array([1, 1, 1, 0], np.float32),
    "image/filename": np.array(["ibug/a.jpg", "helen\\testset\\b.jpg", "ibug/c.jpg", ""]),
  }
  ev = pl.W300LandmarkEvaluator()
  ev.update(batch, {"landmarks68": pts + [[[0, 2]], [[0, 4]], [[0, 99]], [[0, 99]]]})
  r = ev.result()
  assert r["landmarks/nme_inter_pupil/challenging"] == pytest.approx(2 / 40)
  assert r["landmarks/nme_inter_pupil/common"] == pytest.approx(4 / 40)
  assert r["landmarks/nme_inter_pupil/full"] == pytest.approx(3 / 40)
  assert ev.plots(str(tmp_path)) == [str(tmp_path / "ced.png")]
  assert pl.w300_subset("afw/x.jpg") == "train" and pl.w300_subset("x.jpg") == "full"
  with pytest.raises(ValueError, match="no 'landmarks68' output"):
    ev.update(batch, {"landmarks": pts})
  aflw = pl.AflwLandmarkEvaluator()
  face, truth = _face([3, 4])
  aflw.update(
    {
      "landmarks": np.stack([truth, truth]),
      "visibility": np.ones((2, 21)),
      "box": np.array([[0, 0, 50, 50], [0, 0, 1, 1]], float),
      "pose": np.zeros((2, 3)),
      "valid/pose": np.array([False, True]),
      "example_mask": np.array([1, 0], np.float32),
    },
    {"landmarks": np.stack([face, face])},
  )
  r = aflw.result()
  assert r["landmarks/nme"] == pytest.approx(0.1) and r["count/faces"] == 1
  assert "count/pose" not in r and r["count/faces_yaw_0_30"] == 0  # its pose is not valid
  assert aflw.plots(str(tmp_path / "aflw")) == [str(tmp_path / "aflw" / "ced.png")]
