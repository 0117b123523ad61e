r"""TCDCN, ECCV 2014 (docs/papers.md section 2.1): 5 landmarks helped by pose, gender, glasses, smile.

  python -m hyperface_jax.main --config=configs/tcdcn_eccv14.py:cpu --workdir=runs/tcdcn_eccv14_cpu

Measured (:cpu, fresh clone: the synth_face_crops build included): 8 min 36 s on a 2-core
CPU shared with other jobs (load average ~7; build ~1 min, 3000 steps of 64 at ~430
examples/s). Test set, 300 crops (294 scored by inter-ocular distance), model vs trivial
baseline fitted on the training regions (mean shape / majority class):

  landmarks5 NME / inter-ocular   0.214  (mean shape 0.755)   frontal class 0.080 (0.213)
  failure rate (NME > 10 %)       0.554  (1.000)              frontal class 0.223 (1.000)
  landmarks5 NME / box side       0.036  (0.113)
  pose_class accuracy             0.897  (0.403)
  gender accuracy                 0.850  (0.497)
  eyeglasses accuracy             0.987  (0.743)
  smiling accuracy                0.783  (0.720)

The inter-ocular distance shrinks with |yaw|: the two profile classes (35 % of the test
faces) have NME 0.35-0.54 and fail at 94-96 %, so the overall numbers are dominated by
them; the frontal class is the one to compare with the papers (docs/tcdcn.md).

  python -m hyperface_jax.main --config=configs/tcdcn_eccv14.py --workdir=runs/tcdcn_eccv14 \
      --config.data.data_dir=tfds_data     # MTFL built first (docs/datasets/mtfl.md)

Variants (ARG):
  (none)  the paper's setting on MTFL (10,000 train / 2,995 AFLW test faces, docs/papers.md
          5.5): TCDCN (models/tcdcn.py, 40x40 grey), the five ECCV tasks; not run here (no
          MTFL on this machine).
  cpu     the same network and tasks on synth_face_crops (built on the fly: 4000 / 300 /
          300 crops, ~30 s), sized for a 2-core CPU.

Every task is one declaration (hyperface_jax/tasks.py): landmarks5 (region-normalized
points, visibility-weighted L2), pose_class (5 classes), gender, eyeglasses, smiling
(softmax). Documented defaults where docs/papers.md 2.1 is silent ([?] / [R]):
- input: the face box region, jittered like a face detector's box (0.9-1.15x its side,
  shifted by up to 0.08 of it; two regions per face and batch), resized to 40x40, grey
  (`data.normalize="grey"`, BT.601 luma); mirrored with probability 0.5 (pose_class swaps
  left/right under the mirror);
- Adam, cosine decay, no weight decay (the paper's optimiser and schedule are [?];
  MXTC's lr 1e-4 is for SGD on MTFL [R]);
- task weights: landmarks5 100, each auxiliary task 1 (the paper's lambda_a are [?]).
  With region-normalized coordinates the landmark loss 1/(2N) sum v ||d||^2 is ~1e-3 while
  a cross-entropy is ~0.5: the weight 100 makes them comparable (the same reason
  configs/demo.py weights landmarks 25 over HyperFace's 5);
- evaluator `tcdcn_regions` (evaluation/landmarks5_regions.py): every task's metric with
  the trivial baselines (mean shape, majority class) and the TCDCN landmark protocol
  (NME / inter-ocular distance, failure rate at 10 %);
- task weighting `static`; TCDCN's task-wise early stopping is `--config.weighting.name=
  tcdcn_early_stop` (hyperface_jax/weighting/; its arguments in `weighting`).
"""

from hyperface_jax import config_lib


def get_config(arg=None):
  c = config_lib.tcdcn_base(config_lib.TCDCN_ECCV14_TASKS)
  if arg in (None, "", "mtfl"):
    c.data.name = "mtfl"
    c.data.eval_split = "test"  # MTFL has train and test only (docs/papers.md 5.5)
    c.data.test_split = "test"
  elif arg == "cpu":
    config_lib.use_synth_crops(c, total_steps=3000)
  else:
    raise ValueError(f"configs/tcdcn_eccv14.py: unknown variant {arg!r}; known: none, 'cpu'.")
  return c
