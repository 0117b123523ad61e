"""Shared helpers of the dataset-builder tests: build a TFDS dataset from a fixture
`manual_dir` and read a split back keyed by image filename."""

import tensorflow_datasets as tfds


def build(name, manual_dir, data_dir):
  """`tfds.builder(name)` prepared from the original files in `manual_dir`."""
  builder = tfds.builder(name, data_dir=str(data_dir))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
  )
  return builder


def examples_by_filename(builder, split):
  """{image/filename: example} of a split, in file order (numpy values)."""
  ds = builder.as_dataset(split=split, shuffle_files=False)
  return {ex["image/filename"].decode(): ex for ex in tfds.as_numpy(ds)}
