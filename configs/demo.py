r"""HyperFace-AlexNet, CPU variant on synth_faces (the `make demo` job).

  python -m hyperface_jax.main --config=configs/demo.py --workdir=runs/demo

About 12 minutes of training (1600 steps) on a 2-core CPU, 13 min 16 s for the whole
fresh-clone `make demo`; the README shows the results table it printed: landmark NME 0.065
(mean shape 0.157), pose MAE 8.3 deg (mean pose 18.3), gender accuracy 0.867 (majority
0.527), region detection AP 0.998; full-image pipeline: docs/inference.md.

Same network as configs/hyperface_alexnet.py, scaled down, with the choices that make
training from scratch in minutes work (each is a config field, documented here):
- input 99x99 (the smallest size whose fused grid is 2x2, models/fusion.py), width 0.5;
- BatchNorm after every conv (`model.norm="batch"`, statistics synchronised over the
  'data' mesh axis): the paper instead initialises from R-CNN_Face / ImageNet AlexNet
  (docs/papers.md 1.3), which a from-scratch CPU run does not have;
- Adam 2e-3 with cosine decay instead of the paper's SGD (docs/papers.md 1.7 leaves the
  optimiser settings unknown);
- positive regions closer to the faces (scale 0.8-1.3, shift 0.15 of the face side),
  60 % of the regions, 2 per scene (32 scenes per batch), so that the four face tasks
  get labelled regions of many distinct faces per step;
- the other 40 % are windows of the test-time sliding-window pyramid
  (`sampling.negative_source="windows"`, data/sampling.py), 3/4 of them overlapping a
  face (face parts, windows cutting through a face), and detection weight 2 instead of
  1: the full-image pipeline (inference/, docs/papers.md 1.8) shows the network ~760 such
  windows per scene, and a detector trained only on jitter around the faces and on
  background inside the image scored face parts and anything padded past the image
  edge as faces (full-image AP 0.67 -> 0.90, docs/inference.md);
- landmark weight 25 instead of 5: with the per-example 1/(2N) mean of docs/papers.md 1.6 the
  landmark loss is ~1e-3 and the shared layers otherwise hardly see it (TK re-scales the
  same way, docs/papers.md 1.6 note); gender weight 4 instead of 2: gender is the slowest task
  to learn from scratch on synth_faces (its cues are soft by design, docs/synth_faces.md);
- evaluation averages each crop's outputs with those of its mirror image (`flip_test`,
  evaluation/runner.py; the papers evaluate single crops): on the same trained model it
  moved NME 0.069 -> 0.064, pose MAE 8.7 -> 8.5 deg, gender 0.836 -> 0.842 (1400 steps).
"""

from hyperface_jax import config_lib


def get_config(arg=None):
  del arg
  c = config_lib.hyperface_base()
  c.total_steps = 1600
  c.batch_size = 64
  c.eval_batch_size = 256
  c.log_every = 50
  c.eval_every = 800
  c.checkpoint_every = 800
  c.input_size = 99
  c.model.width = 0.5
  c.model.dropout = 0.0
  c.model.norm = "batch"
  config_lib.apply_cpu_recipe(c, warmup_steps=100)
  c.weighting.weights.landmarks = 25.0
  c.weighting.weights.gender = 4.0
  c.data.data_dir = "tfds_data"
  c.weighting.weights.detection = 2.0
  c.data.positive_fraction = 0.6
  c.data.sampling.negative_source = "windows"
  c.data.sampling.near_fraction = 0.75
  c.flip_test = True
  return c
