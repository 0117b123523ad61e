"""Proposal generators (inference/proposals.py): geometry, coverage, OpenCV backends."""

import importlib.util
import os

import numpy as np
import pytest

from hyperface_jax import registry
from hyperface_jax.data import boxes as box_lib
from hyperface_jax.inference import proposals


def test_registry_names_and_unknown_name():
  from hyperface_jax.inference import fast_proposals  # noqa: F401  (registers "learned")

  names = set(registry.PROPOSALS.names())
  assert {"sliding_window", "selective_search", "haar", "learned"} <= names
  with pytest.raises(KeyError, match="sliding_window"):
    proposals.make_proposer({"name": "nope"})


def test_window_sides_hand_worked():
  # 32 * 1.3^k <= 100: 32, 41.6, 54.08, 70.304, 91.3952 (32 * 1.3^5 = 118.8 > 100).
  np.testing.assert_allclose(
    proposals.window_sides((100, 120), 32, 1.0, 1.3), [32, 41.6, 54.08, 70.304, 91.3952]
  )


def test_sliding_window_grid_spans_the_image():
  propose = proposals.sliding_window(min_side=32, scale_step=1.3, stride_fraction=0.3)
  boxes = propose(np.zeros((100, 120, 3), np.uint8))
  assert np.all(boxes[:, 2] == boxes[:, 3])
  # Every window inside the image frame [-0.5, W - 0.5] x [-0.5, H - 0.5].
  np.testing.assert_allclose(box_lib.inside_fraction(boxes, (100, 120)), 1.0)
  small = boxes[boxes[:, 2] == 32]
  # Side 32 on W = 120: span 88, stride 9.6 -> ceil(88 / 9.6) + 1 = 11 columns; H: 9 rows.
  assert len(small) == 11 * 9
  assert small[:, 0].min() == -0.5 and small[:, 0].max() + 32 == pytest.approx(119.5)
  # Largest windows first.
  assert boxes[0, 2] == boxes[:, 2].max()


def test_sliding_window_covers_every_face_size():
  propose = proposals.sliding_window(min_side=32, scale_step=1.3, stride_fraction=0.3)
  windows = propose(np.zeros((160, 160, 3), np.uint8))
  rng = np.random.default_rng(0)
  side = rng.uniform(40, 110, 200)
  xy = rng.uniform(0, 1, (200, 2)) * (160 - side[:, None]) - 0.5
  faces = np.concatenate([xy, side[:, None], side[:, None]], 1)
  assert box_lib.iou(faces, windows).max(axis=1).min() > 0.5


def test_sliding_window_border_reaches_faces_cut_by_the_image_edge():
  # Side 32 with border 0.4 on a 100 x 120 image: the covered strip grows by 12.8 px per
  # edge; W: span 120 + 25.6 - 32 = 113.6, stride 9.6 -> ceil(11.83) + 1 = 13 columns from
  # x = -13.3 to 100.3 (right edge 132.3 = 119.5 + 12.8); H: span 93.6 -> 11 rows.
  propose = proposals.sliding_window(
    min_side=32, scale_step=1.3, stride_fraction=0.3, border_fraction=0.4
  )
  boxes = propose(np.zeros((100, 120, 3), np.uint8))
  small = boxes[boxes[:, 2] == 32]
  assert len(small) == 13 * 11
  assert small[:, 0].min() == pytest.approx(-13.3) and small[:, 0].max() == pytest.approx(100.3)
  assert small[:, 1].min() == pytest.approx(-13.3) and small[:, 1].max() == pytest.approx(80.3)
  # A 100 px face hanging 45 px out of the top-left corner of a 160 px scene: no window
  # inside the image overlaps it with IoU > 0.5; with the border one does.
  face = np.array([[-45.5, -45.5, 100, 100]])
  inside = proposals.sliding_window(min_side=32, scale_step=1.3, stride_fraction=0.3)
  image = np.zeros((160, 160, 3), np.uint8)
  assert box_lib.iou(face, inside(image)).max() < 0.5
  with_border = proposals.sliding_window(
    min_side=32, scale_step=1.3, stride_fraction=0.3, border_fraction=0.4
  )
  assert box_lib.iou(face, with_border(image)).max() > 0.6
  with pytest.raises(ValueError, match="border_fraction"):
    proposals.sliding_window(border_fraction=1.0)


def _square_scene():
  image = np.full((120, 160, 3), 30, np.uint8)
  image[30:80, 60:110] = (220, 40, 40)
  return image


def test_selective_search_finds_a_salient_square():
  propose = proposals.selective_search(mode="fast", max_proposals=50, min_side=8)
  boxes = propose(_square_scene())
  assert 0 < len(boxes) <= 50
  np.testing.assert_allclose(boxes[:, 2], boxes[:, 3])  # squared about the centre
  target = np.array([[59.5, 29.5, 50, 50]])
  assert box_lib.iou(boxes, target).max() > 0.8


def test_selective_search_bad_mode_and_bad_image():
  with pytest.raises(ValueError, match="mode"):
    proposals.selective_search(mode="slow")
  with pytest.raises(ValueError, match="uint8 RGB"):
    proposals.sliding_window()(np.zeros((10, 10), np.uint8))


def test_haar_loads_the_bundled_cascade_and_finds_nothing_in_a_flat_image():
  propose = proposals.haar()
  assert propose(np.full((80, 80, 3), 128, np.uint8)).shape == (0, 4)
  with pytest.raises(FileNotFoundError, match="cascade"):
    proposals.haar(cascade="/nonexistent.xml")


def test_square_about_centre():
  np.testing.assert_allclose(proposals.square_about_centre([[0, 0, 4, 16]]), [[-2, 4, 8, 8]])


@pytest.fixture(scope="module")
def fast_workdir(tmp_path_factory):
  """A configs/fast_hyperface.py workdir with a randomly initialised checkpoint."""
  import importlib.util
  import os

  import jax

  from hyperface_jax import checkpointing, sharding, train

  path = os.path.join(os.path.dirname(__file__), "..", "configs", "fast_hyperface.py")
  spec = importlib.util.spec_from_file_location("fast_hyperface_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("cpu")
  config.model.width = 0.5
  workdir = str(tmp_path_factory.mktemp("fast_hf"))
  _, _, _, _, init = train.build(config, sharding.make_mesh())
  state = jax.jit(init)(jax.random.PRNGKey(1))
  ckpt = checkpointing.Checkpointer(workdir)
  ckpt.save(1, state)
  ckpt.close()
  train._write_config(config, workdir)
  return workdir


def test_learned_dense_scores_equal_the_crop_scores(fast_workdir):
  import jax

  from hyperface_jax.data import preprocess
  from hyperface_jax.inference import batched, fast_proposals

  gen = registry.PROPOSALS.get("learned")(
    workdir=fast_workdir, min_side=24.0, scale_step=10.0, score_threshold=0.0, regress_boxes=False
  )
  assert isinstance(gen, fast_proposals.LearnedProposals)
  image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), np.uint8)
  boxes, scores = gen.score_windows(image)
  # Level 0 has scale 1: windows of 24 px at (4 j - 8.5, 4 i - 8.5), centres inside.
  first = boxes[boxes[:, 2] == 24]
  # x = 4 j - 8.5 with the centre x + 12 in [-0.5, 55.5] -> x in {-8.5, -4.5, ..., 43.5}.
  np.testing.assert_allclose(np.unique(first[:, 0]), np.arange(-8.5, 44, 4))
  np.testing.assert_allclose(np.unique(first[:, 1]), np.arange(-8.5, 28, 4))  # H = 40
  config = batched.load_workdir_config(fast_workdir)
  model, variables, _ = batched.load_variables(config, fast_workdir)
  pick = np.flatnonzero(boxes[:, 2] == 24)[[0, 5, -1]]
  crops = preprocess.normalize(preprocess.crop_and_resize(image, boxes[pick], 24))
  want = jax.nn.softmax(model.apply(variables, crops, train=False)["detection"], -1)[:, 1]
  np.testing.assert_allclose(scores[pick], want, rtol=1e-4, atol=1e-5)
  out = gen(image)
  assert out.shape[1] == 4 and 0 < len(out) <= 300
  with pytest.raises(ValueError, match="workdir"):
    fast_proposals.LearnedProposals("")


def test_learned_windows_move_to_their_regressed_face_boxes(fast_workdir):
  """With the box head (configs/fast_hyperface.py), each window becomes the box its crop
  regresses (data/boxes.py decode_box_deltas), squared about the centre; scores unchanged."""

  from hyperface_jax.data import boxes as box_lib
  from hyperface_jax.data import preprocess
  from hyperface_jax.inference import batched, fast_proposals

  kw = dict(min_side=24.0, scale_step=10.0, score_threshold=0.0)
  plain = fast_proposals.LearnedProposals(fast_workdir, regress_boxes=False, **kw)
  moved = fast_proposals.LearnedProposals(fast_workdir, **kw)  # regress_boxes=True default
  image = np.random.default_rng(2).integers(0, 255, (40, 56, 3), np.uint8)
  windows, scores = plain.score_windows(image)
  boxes, moved_scores = moved.score_windows(image)
  np.testing.assert_array_equal(moved_scores, scores)
  config = batched.load_workdir_config(fast_workdir)
  model, variables, _ = batched.load_variables(config, fast_workdir)
  pick = np.flatnonzero(windows[:, 2] == 24)[[0, 7, -1]]
  crops = preprocess.normalize(preprocess.crop_and_resize(image, windows[pick], 24))
  deltas = np.asarray(model.apply(variables, crops, train=False)["box_regression"])
  want = box_lib.decode_box_deltas(deltas, windows[pick])
  side = np.sqrt(want[:, 2] * want[:, 3])
  centre = want[:, :2] + want[:, 2:] / 2
  np.testing.assert_allclose(boxes[pick, 2], side, rtol=1e-4)
  np.testing.assert_allclose(boxes[pick, 3], side, rtol=1e-4)
  np.testing.assert_allclose(boxes[pick, :2] + side[:, None] / 2, centre, rtol=1e-4, atol=1e-3)
  assert not np.allclose(boxes[pick], windows[pick])  # the random head does move them


def test_proposal_recall_bench_ranks_by_generator_order():
  path = os.path.join(os.path.dirname(__file__), "..", "bench", "proposal_recall.py")
  spec = importlib.util.spec_from_file_location("proposal_recall", path)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  faces = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 10.0, 10.0]])
  # Rank 1 misses both, rank 2 is face 0 exactly, rank 3 half of face 1 (IoU 50/150).
  boxes = np.array([[100.0, 100.0, 5.0, 5.0], [0.0, 0.0, 10.0, 10.0], [55.0, 50.0, 10.0, 10.0]])
  got = bench.best_ious(boxes, faces, [1, 2, None])
  np.testing.assert_allclose(got, [[0.0, 1.0, 1.0], [0.0, 0.0, 1 / 3]])
  table = bench.recall_at(got, [1, 2, "all"])
  assert table["recall@1/iou_0.5"] == 0.0 and table["recall@2/iou_0.5"] == 0.5
  assert table["recall@all/iou_0.7"] == 0.5
  assert bench.best_ious(np.zeros((0, 4)), faces, [None]).tolist() == [[0.0], [0.0]]


def test_greedy_nms_hand_worked_and_equal_to_the_group_leaders():
  from hyperface_jax.inference import fast_proposals, lnms

  boxes = np.array(
    [[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 10, 10], [5, 0, 10, 10], [21, 20, 10, 10]], float
  )
  scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
  # Box 4 leads and removes box 2 (IoU 90 / 110 = 0.82); box 0 removes box 1 (0.82) but not
  # box 3 (IoU 50 / 150 = 0.33 <= 0.5).
  got = fast_proposals.greedy_nms(boxes, scores, 0.5, max_keep=10)
  np.testing.assert_array_equal(got, boxes[[4, 0, 3]])
  np.testing.assert_array_equal(fast_proposals.greedy_nms(boxes, scores, 0.5, 2), boxes[[4, 0]])
  assert fast_proposals.greedy_nms(np.zeros((0, 4)), np.zeros(0), 0.5, 5).shape == (0, 4)
  rng = np.random.default_rng(0)
  xy = rng.uniform(0, 100, (300, 2))
  many = np.concatenate([xy, np.repeat(rng.uniform(10, 40, (300, 1)), 2, 1)], 1)
  s = rng.uniform(0, 1, 300)
  leaders = [g[0] for g in lnms.greedy_groups(many, s, 0.4)]
  np.testing.assert_array_equal(fast_proposals.greedy_nms(many, s, 0.4, 1000), many[leaders])
  np.testing.assert_array_equal(fast_proposals.greedy_nms(many, s, 0.4, 7), many[leaders[:7]])


def test_learned_smallest_window_follows_the_image_size(fast_workdir):
  from hyperface_jax.inference import fast_proposals

  image = np.random.default_rng(1).integers(0, 255, (100, 200, 3), np.uint8)
  gen = fast_proposals.LearnedProposals(
    fast_workdir,
    min_side=24.0,
    scale_step=1.5,
    min_side_fraction=0.5,
    score_threshold=0.0,
    regress_boxes=False,
  )
  boxes, _ = gen.score_windows(image)
  # Smallest face searched: max(24, 0.5 * min(100, 200)) = 50 px, then 75 (112.5 > 100).
  # Level side 50 -> scale 24 / 50: the image becomes 48 x 96 px and a 24 px window maps
  # back to 24 * 200 / 96 = 50 px wide, 24 * 100 / 48 = 50 px high, in image pixels.
  np.testing.assert_allclose(np.unique(np.round(boxes[:, 2], 6)), [50.0, 24 * 200 / 64])
  np.testing.assert_allclose(np.unique(np.round(boxes[:, 3], 6)), [50.0, 24 * 100 / 32])
  first = boxes[boxes[:, 2] == 50.0]
  # Window origins (4 j - 8 - 0.5 in the level) scaled by 200 / 96 about the pixel centres.
  assert first[:, 0].min() == pytest.approx((-8.5 + 0.5) * 200 / 96 - 0.5)
  assert gen(image).shape[1] == 4
